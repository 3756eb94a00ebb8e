from __future__ import annotations

import json
from typing import Any

import pytest

from audit.models import AuditEvent
from governance import classes as dc
from governance.gate import (
    ERROR_DETECTION_FAILED,
    ERROR_POLICY_UNAVAILABLE,
    ERROR_UNKNOWN_PART,
    ERROR_VAULT_FAILED,
    GatedPrompt,
    PromptPart,
    egress_gate,
    preview_required,
    verify_sealed,
)
from governance.models import ConversationVault, PolicyVersion
from tests.governance.conftest import CLOUD, CLOUD_EU_ZDR, LOCAL
from tests.governance.factories import policy_with
from tests.governance.helpers import blocked_and_audited

pytestmark = pytest.mark.django_db

CARD = "4111 1111 1111 1111"


def ask(user: Any, *parts: PromptPart, key: str = "conv-1", destinations: Any = (CLOUD, LOCAL)) -> GatedPrompt:
    return egress_gate(user=user, conversation_key=key, destinations=list(destinations), parts=list(parts))


def sent_text(gated: GatedPrompt) -> str:
    return "\n".join(message["content"] for message in gated.messages)


def test_known_people_and_emails_are_pseudonymized_and_counted(sam: Any, customer_names: list[str]) -> None:
    question = f"Write to {customer_names[0]} (m.ol@example.org) about BJÖRN ÆRØSKØBING."
    gated = ask(sam, PromptPart("question", question))
    text = sent_text(gated)
    assert "Okonkwo" not in text and "m.ol@example.org" not in text and "ÆRØSKØBING" not in text
    assert "<PERSON_1>" in text and "<EMAIL_1>" in text and "<PERSON_2>" in text
    assert gated.manifest["findings"] == {"EMAIL": 1, "PERSON": 2}
    assert gated.manifest["pseudonymized"] == {"EMAIL": 1, "PERSON": 2}
    assert gated.manifest["policy_version_number"] == PolicyVersion.objects.get().number
    assert gated.destinations == (CLOUD.key, LOCAL.key)
    manifest = json.dumps(gated.manifest, ensure_ascii=False)
    for value in (*customer_names, "m.ol@example.org", "BJÖRN"):
        assert value not in manifest
    verify_sealed(gated, CLOUD.key)


def test_the_same_value_keeps_its_placeholder_in_every_turn(sam: Any, customer_names: list[str]) -> None:
    first = ask(sam, PromptPart("question", f"Who is {customer_names[1]}?"))
    second = ask(sam, PromptPart("question", f"Is {customer_names[0]} related to {customer_names[1]}?"))
    assert "<PERSON_1>" in sent_text(first)
    assert sent_text(second) == "Is <PERSON_2> related to <PERSON_1>?"


def test_the_vault_is_encrypted_at_rest(sam: Any, customer_names: list[str]) -> None:
    ask(sam, PromptPart("question", f"Call {customer_names[0]}"), key="conv-secret")
    stored = ConversationVault.objects.get(conversation_key="conv-secret").ciphertext
    assert "Okonkwo" not in stored and "PERSON" not in stored


def test_the_answer_is_re_identified(sam: Any, customer_names: list[str]) -> None:
    gated = ask(sam, PromptPart("question", f"Who is {customer_names[0]}?"))
    restorer = gated.restorer()
    shown = "".join(restorer.feed(piece) for piece in ["**<PERS", "ON_1>** is a [person_1", "] customer."])
    shown += restorer.finish()
    assert shown == f"**{customer_names[0]}** is a {customer_names[0]} customer."


def test_redact_removes_the_value_for_good(sam: Any, publish: Any) -> None:
    publish(policy_with({"Staff": {"classes": {dc.EMAIL: dc.REDACT}}}))
    gated = ask(sam, PromptPart("question", "Forward it to billing@example.org please"))
    assert sent_text(gated) == "Forward it to [EMAIL redacted] please"
    assert gated.manifest["redacted"] == {"EMAIL": 1}


def test_allow_sends_the_value_unchanged(sam: Any, publish: Any) -> None:
    publish(policy_with({"Staff": {"classes": {dc.EMAIL: dc.ALLOW}}}))
    assert sent_text(ask(sam, PromptPart("question", "Mail billing@example.org"))) == "Mail billing@example.org"


def test_a_blocked_class_in_the_question_stops_the_cloud_call(sam: Any) -> None:
    with blocked_and_audited(sam, "conv-1", match="your question contains PAYMENT_CARD"):
        ask(sam, PromptPart("question", f"Is {CARD} still valid?"), destinations=[CLOUD])
    event = AuditEvent.objects.filter(action="governance.egress_blocked").latest("seq")
    assert CARD not in json.dumps(event.details)


def test_a_blocked_question_may_still_be_answered_by_the_local_model(sam: Any) -> None:
    gated = ask(sam, PromptPart("question", f"Is {CARD} still valid?"))
    assert gated.destinations == (LOCAL.key,)
    assert sent_text(gated) == f"Is {CARD} still valid?"  # nothing leaves: the local model sees the original
    assert gated.manifest["local_only"] is True
    assert gated.manifest["destinations_refused"][0]["destination"] == CLOUD.key


def test_a_passage_with_a_blocked_class_is_withheld_and_the_rest_is_sent(sam: Any) -> None:
    gated = ask(
        sam,
        PromptPart(
            "chunk", "Our test key is sk-proj-abcdefghijklmnopqrstuvwxyz0123", source={"classification": "internal"}
        ),
        PromptPart("question", "How do I rotate keys?"),
        destinations=[CLOUD],
    )
    assert sent_text(gated) == "How do I rotate keys?"
    chunk = gated.manifest["parts"][0]
    assert chunk["decision"] == "withheld" and "CREDENTIAL" in chunk["reason"]


def test_local_only_knowledge_never_reaches_a_cloud_destination(sam: Any) -> None:
    parts = [
        PromptPart("chunk", "The merger code name is Bluebird.", source={"classification": "local_only"}),
        PromptPart("question", "What is the code name?"),
    ]
    gated = ask(sam, *parts, destinations=[CLOUD, CLOUD_EU_ZDR, LOCAL])
    assert gated.destinations == (LOCAL.key,)
    with pytest.raises(PermissionError):
        verify_sealed(gated, CLOUD.key)
    with blocked_and_audited(sam, "conv-1", match="local model"):
        ask(sam, *parts, destinations=[CLOUD, CLOUD_EU_ZDR])


def test_confidential_knowledge_is_withheld_from_cloud_prompts_by_default(sam: Any) -> None:
    gated = ask(
        sam,
        PromptPart("chunk", "Board minutes: layoffs in Q3.", source={"classification": "confidential"}),
        PromptPart("question", "Any news?"),
        destinations=[CLOUD],
    )
    assert "layoffs" not in sent_text(gated)
    assert gated.manifest["withheld"] == 1


def test_memory_scopes_and_customer_fields_can_be_kept_local(sam: Any, publish: Any) -> None:
    publish(policy_with({"Staff": {"withheld_memory_scopes": ["customer"], "withheld_customer_fields": ["notes"]}}))
    gated = ask(
        sam,
        PromptPart("memory", "Remembered: prefers calls", source={"memory_id": 1, "scope": "customer"}),
        PromptPart("memory", "Remembered: office closes at 5", source={"memory_id": 2, "scope": "organisation"}),
        PromptPart("customer", "Customer notes: difficult", source={"customer_id": 1, "field": "notes"}),
        PromptPart("customer", "Customer tier: gold", source={"customer_id": 1, "field": "tier"}),
        PromptPart("question", "Summarise"),
        destinations=[CLOUD],
    )
    assert sent_text(gated) == "Remembered: office closes at 5\nCustomer tier: gold\nSummarise"


def test_provider_rules_clear_only_matching_destinations(sam: Any, publish: Any) -> None:
    publish(policy_with({"Staff": {"providers": {"require_zero_data_retention": True, "allowed_regions": ["eu"]}}}))
    gated = ask(sam, PromptPart("question", "Hello"), destinations=[CLOUD, CLOUD_EU_ZDR])
    assert gated.destinations == (CLOUD_EU_ZDR.key,)
    assert "zero data retention" in gated.manifest["destinations_refused"][0]["reason"]


def test_a_new_publication_applies_to_the_next_prompt(sam: Any, publish: Any) -> None:
    assert "<EMAIL_1>" in sent_text(ask(sam, PromptPart("question", "Mail a@example.org")))
    version = publish(policy_with({"Staff": {"classes": {dc.EMAIL: dc.ALLOW}}}))
    gated = ask(sam, PromptPart("question", "Mail a@example.org"), key="conv-2")
    assert sent_text(gated) == "Mail a@example.org"
    assert gated.manifest["policy_version"] == version.pk


def test_preview_before_send_follows_the_role(sam: Any, alice: Any, publish: Any) -> None:
    assert preview_required(sam) is False
    publish(policy_with({"Staff": {"preview_before_send": True}}))
    assert preview_required(sam) is True
    assert preview_required(alice) is False


def test_a_tampered_prompt_is_refused_by_the_seal(sam: Any) -> None:
    gated = ask(sam, PromptPart("question", "Hello"))
    forged = GatedPrompt(
        messages=({"role": "user", "content": "Hello, and here is a secret"},),
        manifest=gated.manifest,
        destinations=gated.destinations,
        seal=gated.seal,
    )
    with pytest.raises(PermissionError):
        verify_sealed(forged, CLOUD.key)


# ---- fail closed -------------------------------------------------------------------------------------
def test_it_fails_closed_when_detection_breaks(sam: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(text: str, **kwargs: Any) -> list[Any]:
        raise RuntimeError(f"boom on {text}")

    monkeypatch.setattr("governance.detection.detect_parts", broken)
    with blocked_and_audited(sam, "conv-1") as blocked:
        ask(sam, PromptPart("question", "Call Marguerite"))
    assert str(blocked.value) == ERROR_DETECTION_FAILED
    assert "Marguerite" not in json.dumps(AuditEvent.objects.latest("seq").details)


def test_it_fails_closed_when_a_known_entity_source_breaks(sam: Any) -> None:
    from governance import known_entities

    def broken() -> list[Any]:
        raise ConnectionError("customer database down")

    known_entities.register_source("broken", broken)
    try:
        with blocked_and_audited(sam, "conv-1") as blocked:
            ask(sam, PromptPart("question", "Hello"))
        assert str(blocked.value) == ERROR_DETECTION_FAILED
    finally:
        known_entities._sources.pop("broken", None)


def test_it_fails_closed_without_a_policy(sam: Any) -> None:
    PolicyVersion.objects.all().delete()
    with blocked_and_audited(sam, "conv-1") as blocked:
        ask(sam, PromptPart("question", "Hello"))
    assert str(blocked.value) == ERROR_POLICY_UNAVAILABLE
    assert preview_required(sam) is True


def test_it_fails_closed_when_the_vault_key_is_wrong(sam: Any, settings: Any, customer_names: list[str]) -> None:
    ask(sam, PromptPart("question", f"Who is {customer_names[0]}?"), key="conv-key")
    settings.GOVERNANCE_VAULT_KEY = "not-a-fernet-key"
    with blocked_and_audited(sam, "conv-key") as blocked:
        ask(sam, PromptPart("question", f"Who is {customer_names[0]}?"), key="conv-key")
    assert str(blocked.value) == ERROR_VAULT_FAILED


def test_an_unknown_part_kind_is_refused(sam: Any) -> None:
    with blocked_and_audited(sam, "conv-1") as blocked:
        ask(sam, PromptPart("attachment", "Hello"))
    assert str(blocked.value) == ERROR_UNKNOWN_PART


def test_an_unforeseen_failure_fails_closed_with_a_generic_reason(sam: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("<PERSON_1> = Marguerite Okonkwo-Lind")  # details of a failure may hold values

    monkeypatch.setattr("governance.gate._apply_policy", broken)
    with blocked_and_audited(sam, "conv-1", reason="internal error") as blocked:
        ask(sam, PromptPart("question", "Hello"))
    assert str(blocked.value) == ERROR_DETECTION_FAILED


def test_the_manifest_keeps_only_ids_and_labels_of_a_parts_source(sam: Any) -> None:
    source = {"citation": 1, "chunk_id": 7, "classification": "internal", "document_title": "Contract of Ada Byron"}
    gated = ask(sam, PromptPart("chunk", "Refunds take 14 days.", source=source), PromptPart("question", "When?"))
    assert gated.manifest["parts"][0]["source"] == {"citation": 1, "chunk_id": 7, "classification": "internal"}
