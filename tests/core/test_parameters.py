"""The Settings screen: operational parameters tuned while the portal runs, versioned and audited."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from portal.assistant.models import Conversation, MessageRole
from portal.core.models import ParameterVersion
from portal.core.parameters import BY_NAME, PARAMETERS, effective, parameter_value, parameters_forget
from portal.core.services import ERROR_NOTHING_CHANGED, ERROR_PINNED, parameters_restore, parameters_save
from tests.assistant.factories import AssistantProfileFactory, ConversationFactory, MessageFactory
from tests.routing.factories import CatalogModelFactory, UsageFactory

pytestmark = pytest.mark.django_db


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _form(**changes: Any) -> dict[str, Any]:
    """The form as the page shows it (every value in force), with `changes` typed over it."""
    data: dict[str, Any] = {}
    for parameter in PARAMETERS:
        value = effective(parameter.name).value
        if parameter.kind == "bool":
            if value:
                data[parameter.name] = "on"
        else:
            data[parameter.name] = "" if value is None else str(value)
    data.update(changes)
    data.setdefault("reason", "tuning after the pilot")
    return {key: value for key, value in data.items() if value is not False}


def test_without_a_saved_version_every_value_is_its_setting(settings: Any) -> None:
    settings.KNOWLEDGE_SEARCH_CANDIDATES = 77
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 3 * 1024 * 1024
    assert parameter_value("search_candidates") == 77
    assert effective("upload_max_mb").value == 3  # shown in megabytes
    assert parameter_value("upload_max_mb") == 3 * 1024 * 1024  # used in bytes
    assert effective("search_candidates").source == "default"
    assert parameter_value("default_budget_per_user") is None
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 10_000  # under a megabyte: used as it is, not rounded to 0 MB
    assert parameter_value("upload_max_mb") == 10_000


def test_an_administrator_saves_a_version_that_every_reader_uses_and_the_trail_records(alice: Any) -> None:
    from knowledge.services import max_upload_bytes

    response = _client(alice).post(reverse("settings_save"), _form(search_candidates="120", upload_max_mb="8"))

    assert response.status_code == 302
    version = ParameterVersion.objects.get()
    assert version.values == {"search_candidates": 120, "upload_max_mb": 8}
    assert version.author == alice and version.reason == "tuning after the pilot"
    assert parameter_value("search_candidates") == 120
    assert effective("search_candidates").source == "screen"
    assert max_upload_bytes() == 8 * 1024 * 1024
    event = AuditEvent.objects.get(action="core.parameters_changed")
    assert event.actor_id == alice.pk and event.object_id == str(version.pk)
    changes = {change["name"]: (change["before"], change["after"]) for change in event.details["changes"]}
    assert changes == {"search_candidates": (None, 120), "upload_max_mb": (None, 8)}
    assert "tuning after the pilot" not in str(event.details)  # the typed reason: its fingerprint only
    page = _client(alice).get(reverse("settings")).content.decode()
    assert "version 1" in page and "Set here; the default is 50" in page


def test_values_out_of_range_are_refused_by_name_and_nothing_is_saved(alice: Any) -> None:
    response = _client(alice).post(
        reverse("settings_save"), _form(search_candidates="0", memory_min_similarity="1.5", reason="")
    )

    assert response.status_code == 400
    page = response.content.decode()
    assert "Ensure this value is greater than or equal to 5" in page
    assert "Ensure this value is less than or equal to 1" in page
    assert "This field is required" in page  # the reason
    assert not ParameterVersion.objects.exists()
    assert not AuditEvent.objects.filter(action="core.parameters_changed").exists()
    with pytest.raises(ValidationError, match="between 5 and 500"):
        parameters_save(actor=alice, values={"search_candidates": 501}, reason="r")


def test_saving_the_values_in_force_changes_nothing(alice: Any) -> None:
    response = _client(alice).post(reverse("settings_save"), _form())
    assert response.status_code == 400
    assert ERROR_NOTHING_CHANGED in response.content.decode()
    assert not ParameterVersion.objects.exists()


def test_a_value_set_in_the_environment_is_pinned_and_the_screen_says_so(
    alice: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KNOWLEDGE_SEARCH_CANDIDATES", "80")
    settings.KNOWLEDGE_SEARCH_CANDIDATES = 80
    ParameterVersion.objects.create(number=1, values={"search_candidates": 200}, reason="before the pin")
    parameters_forget()

    assert parameter_value("search_candidates") == 80  # the environment wins over a saved value
    page = _client(alice).get(reverse("settings")).content.decode()
    assert "Pinned by KNOWLEDGE_SEARCH_CANDIDATES in the environment" in page
    assert 'name="search_candidates" value="80"' in page and "disabled" in page
    with pytest.raises(ValidationError) as refused:
        parameters_save(actor=alice, values={"search_candidates": 90}, reason="r")
    assert ERROR_PINNED.format(label="Candidates per search leg", env="KNOWLEDGE_SEARCH_CANDIDATES") in (
        refused.value.messages
    )
    # a posted value for the pinned field is ignored (the field is disabled); the other change is saved
    _client(alice).post(reverse("settings_save"), _form(search_candidates="300", pdf_max_pages="99"))
    assert parameter_value("search_candidates") == 80
    assert parameter_value("pdf_max_pages") == 99


def test_going_back_to_an_earlier_version_saves_a_new_one(alice: Any) -> None:
    parameters_save(actor=alice, values={"search_candidates": 60}, reason="first")
    parameters_save(actor=alice, values={"search_candidates": 90, "learning_batch": 10}, reason="second")

    response = _client(alice).post(reverse("settings_restore", args=[1]), {"reason": "90 was too slow"})

    assert response.status_code == 302
    latest = ParameterVersion.objects.order_by("-number").first()
    assert latest is not None and latest.number == 3 and latest.values == {"search_candidates": 60}
    assert latest.reason == "90 was too slow"
    assert parameter_value("learning_batch") == BY_NAME["learning_batch"].default()
    assert AuditEvent.objects.filter(action="core.parameters_changed").count() == 3
    with pytest.raises(ValidationError, match="no settings version 9"):
        parameters_restore(actor=alice, number=9, reason="")
    with pytest.raises(ValueError, match="cannot be changed"):
        latest.reason = "rewritten"
        latest.save()


@pytest.mark.parametrize("who", ["olivia", "audrey", "sam", "oscar"])
def test_only_an_administrator_opens_or_changes_the_settings(who: str, request: pytest.FixtureRequest) -> None:
    user = request.getfixturevalue(who)
    client = _client(user)
    assert client.get(reverse("settings")).status_code == 403
    assert client.post(reverse("settings_save"), _form(search_candidates="100")).status_code == 403
    assert not ParameterVersion.objects.exists()
    with pytest.raises(PermissionDenied):
        parameters_save(actor=user, values={"search_candidates": 100}, reason="r")
    assert "/settings/" not in client.get(reverse("home")).content.decode()


def test_the_administrator_finds_the_screen_in_the_manage_menu(alice: Any) -> None:
    assert 'href="/settings/"' in _client(alice).get(reverse("home")).content.decode()


def test_other_processes_see_a_change_once_their_cached_copy_is_older_than_the_ttl(alice: Any, settings: Any) -> None:
    settings.PORTAL_PARAMETERS_TTL_SECONDS = 3600
    assert parameter_value("learning_batch") == 50
    # another process saves a version: this one keeps its cached copy until the TTL has passed
    ParameterVersion.objects.create(number=1, values={"learning_batch": 7}, reason="elsewhere")
    assert parameter_value("learning_batch") == 50
    settings.PORTAL_PARAMETERS_TTL_SECONDS = 0
    assert parameter_value("learning_batch") == 7
    # the saving process itself does not wait
    settings.PORTAL_PARAMETERS_TTL_SECONDS = 3600
    with pytest.raises(ValidationError):  # nothing to change: proves the service read the same version
        parameters_save(actor=alice, values={"learning_batch": 7}, reason="same")


def test_pausing_memory_learning_stops_the_sweep_and_resuming_picks_up(alice: Any, sam: Any) -> None:
    from portal.memory.learning import conversations_due_for_learning

    conversation = ConversationFactory.create(owner=sam, profile=AssistantProfileFactory.create(usable_by=["Staff"]))
    question = MessageFactory.create(conversation=conversation, content="When do we close on Fridays?")
    MessageFactory.create(conversation=conversation, role=MessageRole.ASSISTANT, reply_to=question, content="At 4 pm.")
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now() - dt.timedelta(hours=1))
    assert conversations_due_for_learning() == [conversation.pk]

    parameters_save(actor=alice, values={"learning_paused": True}, reason="review backlog")
    assert conversations_due_for_learning() == []
    parameters_save(actor=alice, values={"learning_paused": False, "learning_idle_minutes": 120}, reason="resume")
    assert conversations_due_for_learning() == []  # quiet for an hour only, now two are needed
    parameters_save(actor=alice, values={"learning_idle_minutes": 30}, reason="back")
    assert conversations_due_for_learning() == [conversation.pk]


def test_the_default_budget_applies_to_users_without_one(alice: Any, sam: Any) -> None:
    from portal.routing.services import route_decide

    economy = CatalogModelFactory.create(tier="economy")
    CatalogModelFactory.create(tier="premium")
    UsageFactory.create(user=sam, cost=Decimal("2.50"))
    assert route_decide(user=sam, task_type="analyze", question="x").tier == "premium"

    parameters_save(actor=alice, values={"default_budget_per_user": Decimal("2.00")}, reason="pilot budget")
    decision = route_decide(user=sam, task_type="analyze", question="x")

    assert decision.tier == "economy"
    assert [candidate.key for candidate in decision.candidates] == [economy.key, "offline"]
    assert "Your monthly AI budget of USD 2.00 is used up (USD 2.50 spent)" in decision.budget_note
    assert ParameterVersion.objects.get().values == {"default_budget_per_user": "2.00"}
