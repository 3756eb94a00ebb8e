from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from audit.privacy import text_hmac
from governance import classes as dc
from governance.gate import PromptPart, egress_gate
from governance.models import PolicyDraft, PolicyVersion, TermList
from governance.policy import normalise_document
from governance.selectors import role_names
from tests.governance.conftest import CLOUD
from tests.governance.factories import TermListFactory, policy_with

pytestmark = pytest.mark.django_db


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def policy_post_data(document: dict[str, Any], **extra: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for role, rules in normalise_document(document, role_names())["roles"].items():
        slug = role.lower().replace(" ", "_")
        for data_class, action in rules["classes"].items():
            data[f"{slug}__class__{data_class}"] = action
        for label, action in rules["labels"].items():
            data[f"{slug}__label__{label}"] = action
        if rules["preview_before_send"]:
            data[f"{slug}__preview"] = "on"
        if rules["providers"]["require_zero_data_retention"]:
            data[f"{slug}__zdr"] = "on"
        data[f"{slug}__regions"] = ", ".join(rules["providers"]["allowed_regions"])
        data[f"{slug}__blocked_providers"] = ", ".join(rules["providers"]["blocked_providers"])
        data[f"{slug}__memory_scopes"] = ", ".join(rules["withheld_memory_scopes"])
        data[f"{slug}__customer_fields"] = ", ".join(rules["withheld_customer_fields"])
    data.update(extra)
    return data


PAGES: list[tuple[str, dict[str, Any]]] = [
    ("governance:overview", {}),
    ("governance:policy_edit", {}),
    ("governance:version_list", {}),
    ("governance:labels", {}),
    ("governance:term_lists", {}),
    ("governance:simulator", {}),
]


@pytest.mark.parametrize(("name", "kwargs"), PAGES)
def test_officers_see_every_governance_page(olivia: Any, name: str, kwargs: dict[str, Any]) -> None:
    response = client_for(olivia).get(reverse(name, kwargs=kwargs))
    assert response.status_code == 200
    # the page itself, not an error page or a redirect target that also answers 200
    assert f"governance/{name.split(':')[1]}.html" in [template.name for template in response.templates]
    assert reverse(name, kwargs=kwargs) in response.content.decode()  # its own link is in the page (navigation)


@pytest.mark.parametrize("person", ["alice", "audrey", "sam", "oscar"])
def test_everyone_else_gets_a_403(person: str, request: pytest.FixtureRequest) -> None:
    client = client_for(request.getfixturevalue(person))
    version = PolicyVersion.objects.get()
    for name, kwargs in PAGES:
        assert client.get(reverse(name, kwargs=kwargs)).status_code == 403
    assert client.get(reverse("governance:version_detail", args=[version.pk])).status_code == 403
    response = client.post(reverse("governance:version_restore", args=[version.pk]), {"reason": "x"})
    assert response.status_code == 403


def test_anonymous_visitors_are_sent_to_sign_in() -> None:
    response = Client().get(reverse("governance:overview"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_unknown_versions_and_term_lists_are_404(olivia: Any) -> None:
    client = client_for(olivia)
    assert client.get(reverse("governance:version_detail", args=[999999])).status_code == 404
    assert client.get(reverse("governance:term_list_edit", args=[999999])).status_code == 404


def test_the_navigation_shows_governance_to_officers_only(olivia: Any, sam: Any) -> None:
    assert "Governance" in client_for(olivia).get(reverse("home")).content.decode()
    assert ">Governance<" not in client_for(sam).get(reverse("home")).content.decode()


def test_an_officer_saves_a_draft_then_publishes_it_with_a_reason(olivia: Any, sam: Any) -> None:
    client = client_for(olivia)
    changed = policy_with({"Staff": {"classes": {dc.EMAIL: dc.ALLOW}}})
    response = client.post(reverse("governance:policy_edit"), policy_post_data(changed, action="save"))
    assert response.status_code == 302
    assert PolicyVersion.objects.count() == 1  # a draft applies to nobody
    page = client.get(reverse("governance:policy_edit")).content.decode()
    assert "Staff · EMAIL" in page  # the pending change is listed
    gated = egress_gate(user=sam, conversation_key="c", destinations=[CLOUD], parts=[PromptPart("question", "a@b.org")])
    assert gated.messages[0]["content"] == "<EMAIL_1>"

    response = client.post(reverse("governance:policy_edit"), policy_post_data(changed, action="publish", reason=""))
    assert response.status_code == 400 and "Say why" in response.content.decode()
    response = client.post(
        reverse("governance:policy_edit"), policy_post_data(changed, action="publish", reason="Mail is public here")
    )
    assert response.status_code == 302
    version = PolicyVersion.objects.order_by("-number").first()
    assert version is not None and version.number == 2 and version.author == olivia
    assert version.diff == [{"rule": "Staff · EMAIL", "before": "pseudonymize", "after": "allow"}]
    assert not PolicyDraft.objects.exists()
    event = AuditEvent.objects.filter(action="governance.policy_published").latest("seq")
    assert (
        event.actor_id == olivia.pk
        and event.details["version"] == 2
        and event.details["reason_hmac"] == text_hmac("Mail is public here")
        and "Mail is public" not in str(event.details)  # the typed reason: on the version row only
    )
    gated = egress_gate(
        user=sam, conversation_key="c2", destinations=[CLOUD], parts=[PromptPart("question", "a@b.org")]
    )
    assert gated.messages[0]["content"] == "a@b.org"
    detail = client.get(reverse("governance:version_detail", args=[version.pk])).content.decode()
    assert "Staff · EMAIL" in detail and "pseudonymize" in detail


def test_editing_the_matrix_previews_the_changes_without_saving(olivia: Any, sam: Any) -> None:
    data = policy_post_data(policy_with({"Staff": {"classes": {dc.PHONE: dc.REDACT}}}))
    response = client_for(olivia).post(reverse("governance:policy_preview"), data, HTTP_HX_REQUEST="true")
    fragment = response.content.decode()
    assert response.status_code == 200 and "<html" not in fragment
    assert "Staff · PHONE" in fragment and "redact" in fragment
    assert not PolicyDraft.objects.exists() and PolicyVersion.objects.count() == 1
    assert client_for(sam).post(reverse("governance:policy_preview"), data).status_code == 403


def test_bad_policy_input_is_a_400(olivia: Any) -> None:
    data = policy_post_data(policy_with({}), action="save")
    data["staff__class__PERSON"] = "shout"
    assert client_for(olivia).post(reverse("governance:policy_edit"), data).status_code == 400


def test_a_version_is_restored_by_publishing_a_copy(olivia: Any, publish: Any) -> None:
    first = PolicyVersion.objects.get()
    publish(policy_with({"Staff": {"classes": {dc.PERSON: dc.ALLOW}}}))
    response = client_for(olivia).post(
        reverse("governance:version_restore", args=[first.pk]), {"reason": "Back to the defaults"}
    )
    assert response.status_code == 302
    restored = PolicyVersion.objects.order_by("-number").first()
    assert restored is not None and restored.number == 3 and restored.restored_from == first
    assert restored.document == first.document
    assert restored.diff == [{"rule": "Staff · PERSON", "before": "allow", "after": "pseudonymize"}]
    assert (
        AuditEvent.objects.filter(action="governance.policy_restored").latest("seq").details["restored_from_version"]
        == 1
    )


def test_published_versions_cannot_be_changed(olivia: Any) -> None:
    version = PolicyVersion.objects.get()
    version.reason = "rewritten history"
    with pytest.raises(ValueError):
        version.save()


def test_term_lists_are_managed_and_feed_the_dictionary(olivia: Any, sam: Any) -> None:
    client = client_for(olivia)
    response = client.post(
        reverse("governance:term_lists"),
        {"name": "Projects", "data_class": "CUSTOMER_FIELD", "terms": "Project Nightjar\n\nProject Nightjar\nKestrel"},
    )
    assert response.status_code == 302
    term_list = TermList.objects.get(name="Projects")
    assert term_list.term_values() == ["Project Nightjar", "Kestrel"]
    event = AuditEvent.objects.filter(action="governance.term_list_created").latest("seq")
    assert event.details["terms"] == 2 and "Nightjar" not in str(event.details)
    from governance import known_entities

    known_entities.invalidate()  # on_commit does not run inside the test transaction
    gated = egress_gate(
        user=sam,
        conversation_key="t",
        destinations=[CLOUD],
        parts=[PromptPart("question", "Status of project NIGHTJAR?")],
    )
    assert gated.messages[0]["content"] == "Status of <CUSTOMER_FIELD_1>?"
    assert client.post(reverse("governance:term_list_delete", args=[term_list.pk])).status_code == 302
    assert not TermList.objects.exists()


def test_bad_term_list_input_is_a_400(olivia: Any) -> None:
    TermListFactory.create(name="Taken")
    response = client_for(olivia).post(reverse("governance:term_lists"), {"name": "Taken", "data_class": "PERSON"})
    assert response.status_code == 400


def test_the_label_overview_lists_each_label_per_role(olivia: Any) -> None:
    page = client_for(olivia).get(reverse("governance:labels")).content.decode()
    assert "Local only" in page and "Confidential" in page


def test_the_simulator_shows_exactly_what_the_gate_sends(olivia: Any, sam: Any, customer_names: list[str]) -> None:
    text = f"Tell {customer_names[0]} at m@example.org that card {'4111 1111 1111 1111'} is fine"
    text_ok = f"Tell {customer_names[0]} at m@example.org hello"
    client = client_for(olivia)
    data = {"text": text_ok, "kind": "question", "role": "Staff", "destination": "custom", "provider": "openai",
            "region": "us", "policy": "published"}  # fmt: skip
    response = client.post(reverse("governance:simulator"), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    fragment = response.content.decode()
    assert "<html" not in fragment
    real = egress_gate(user=sam, conversation_key="sim-compare", destinations=[CLOUD],
                       parts=[PromptPart("question", text_ok)])  # fmt: skip
    assert real.messages[0]["content"] == "Tell <PERSON_1> at <EMAIL_1> hello"
    assert "Tell &lt;PERSON_1&gt; at &lt;EMAIL_1&gt; hello" in fragment
    assert customer_names[0] not in fragment.split("Would be sent")[1]
    blocked = client.post(reverse("governance:simulator"), {**data, "text": text}, HTTP_HX_REQUEST="true")
    assert "PAYMENT_CARD" in blocked.content.decode() and "Nothing would be sent" in blocked.content.decode()


def test_the_simulator_calls_the_real_gate(olivia: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from governance import simulator
    from governance.gate import egress_gate as real

    calls = []

    def spy(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(simulator, "egress_gate", spy)
    client_for(olivia).post(
        reverse("governance:simulator"),
        {"text": "hi", "kind": "chunk", "classification": "local_only", "role": "Staff", "destination": "offline",
         "policy": "published"},
    )  # fmt: skip
    assert calls and calls[0]["roles"] == ["Staff"] and calls[0]["persist_vault"] is False
    assert calls[0]["parts"][0].source == {"classification": "local_only"}


def test_the_simulator_can_try_the_draft(olivia: Any) -> None:
    client = client_for(olivia)
    client.post(
        reverse("governance:policy_edit"),
        policy_post_data(policy_with({"Staff": {"classes": {dc.EMAIL: dc.REDACT}}}), action="save"),
    )
    data = {"text": "x@example.org", "kind": "question", "role": "Staff", "destination": "custom",
            "provider": "openai", "policy": "draft"}  # fmt: skip
    assert "[EMAIL redacted]" in client.post(reverse("governance:simulator"), data).content.decode()
    data["policy"] = "published"
    assert "&lt;EMAIL_1&gt;" in client.post(reverse("governance:simulator"), data).content.decode()


def test_bad_simulator_input_is_a_400(olivia: Any) -> None:
    response = client_for(olivia).post(reverse("governance:simulator"), {"text": "", "role": "Nobody"})
    assert response.status_code == 400


def test_the_policy_editor_accepts_the_abstract_action(olivia: Any, sam: Any) -> None:
    changed = policy_with({"Staff": {"classes": {dc.DATE_OF_BIRTH: dc.ABSTRACT}}})
    client = client_for(olivia)
    page = client.get(reverse("governance:policy_edit")).content.decode()
    assert '<option value="abstract">abstract</option>' in page and "replaced by a generalisation" in page

    response = client.post(
        reverse("governance:policy_edit"), policy_post_data(changed, action="publish", reason="Ages are enough")
    )

    assert response.status_code == 302
    version = PolicyVersion.objects.order_by("-number").first()
    assert version is not None and version.document["roles"]["Staff"]["classes"][dc.DATE_OF_BIRTH] == dc.ABSTRACT
    assert version.diff == [{"rule": "Staff · DATE_OF_BIRTH", "before": "pseudonymize", "after": "abstract"}]
    gated = egress_gate(user=sam, conversation_key="c-abs", destinations=[CLOUD],
                        parts=[PromptPart("question", "She was born 1984-03-12.")])  # fmt: skip
    assert gated.messages[0]["content"].startswith("She was born <aged ")


def test_the_simulator_shows_abstractions_for_a_sensitive_operation(olivia: Any, customer_names: list[str]) -> None:
    client = client_for(olivia)
    data = {"text": f"Write to {customer_names[0]} at m@example.org", "kind": "question", "role": "Staff",
            "destination": "custom", "provider": "openai", "policy": "published"}  # fmt: skip

    normal = client.post(reverse("governance:simulator"), data, HTTP_HX_REQUEST="true").content.decode()
    sensitive = client.post(
        reverse("governance:simulator"), {**data, "sensitive": "on"}, HTTP_HX_REQUEST="true"
    ).content.decode()

    assert "Write to &lt;PERSON_1&gt; at &lt;EMAIL_1&gt;" in normal
    assert "Write to &lt;a person&gt; at &lt;an e-mail address&gt;" in sensitive
    assert "EMAIL × 1, PERSON × 1" in sensitive.split("Abstracted")[1].split("</dd>")[0]
    assert "every personal class at least abstracted" in sensitive
