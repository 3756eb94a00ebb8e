"""Refused access is audited (audit.access_denied), without flooding the chain and without raw request text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.cache import cache
from django.test import AsyncClient, Client
from django.urls import reverse

from audit.middleware import ACTION, REASON_HIDDEN, REASON_NOT_FOUND, REASON_PERMISSION, REASON_REFUSED
from audit.models import AuditEvent
from tests.accounts.factories import UserFactory
from tests.assistant.factories import AssistantProfileFactory, ConversationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_rate_limit() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def someone_elses_conversation(db: None) -> Any:
    profile = AssistantProfileFactory.create(name="General", usable_by=["Staff"])
    return ConversationFactory.create(owner=UserFactory.create(username="sue", roles=["Staff"]), profile=profile)


def _client(user: Any, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def refusals() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=ACTION).order_by("seq"))


def test_reading_someone_elses_conversation_is_a_404_and_an_audited_refusal(sam: Any, someone_elses_conversation: Any):
    url = reverse("assistant:conversation", kwargs={"conversation_id": someone_elses_conversation.pk})

    response = _client(sam).get(url + "?q=4111111111111111")

    assert response.status_code == 404
    (event,) = refusals()
    assert event.actor_id == sam.pk and event.outcome == "denied"
    assert event.details["reason"] == REASON_HIDDEN and event.details["method"] == "GET"
    assert event.details["path"] == url and event.details["status"] == 404
    assert event.details["view"] == "assistant:conversation"
    assert "4111111111111111" not in str(event.details)  # the query string is never kept


def test_a_mistyped_address_is_not_a_refusal_but_a_write_to_a_missing_object_is(sam: Any):
    client = _client(sam)
    missing = reverse("assistant:conversation", kwargs={"conversation_id": 987654})

    assert client.get(missing).status_code == 404
    assert refusals() == []
    assert client.post(reverse("assistant:conversation_delete", kwargs={"conversation_id": 987654})).status_code == 404
    (event,) = refusals()
    assert event.details["reason"] == REASON_NOT_FOUND and event.details["method"] == "POST"


def test_a_refused_write_to_someone_elses_object_is_audited_and_changes_nothing(
    sam: Any, someone_elses_conversation: Any
):
    url = reverse("assistant:conversation_rename", kwargs={"conversation_id": someone_elses_conversation.pk})

    assert _client(sam).post(url, {"title": "Mine now"}).status_code == 404

    someone_elses_conversation.refresh_from_db()
    assert someone_elses_conversation.title != "Mine now"
    (event,) = refusals()
    assert event.details["reason"] == REASON_HIDDEN and event.details["method"] == "POST"
    assert "Mine now" not in str(event.details)


def test_too_little_access_is_a_403_and_an_audited_refusal(audrey: Any):
    assert _client(audrey).get(reverse("assistant:chat")).status_code == 403

    (event,) = refusals()
    assert event.details["reason"] == REASON_PERMISSION and event.actor_username == "audrey"


def test_a_failed_csrf_check_is_an_audited_refusal(sam: Any, someone_elses_conversation: Any):
    client = _client(sam, enforce_csrf_checks=True)

    response = client.post(reverse("assistant:conversation_new"), {"profile": "1"})

    assert response.status_code == 403
    (event,) = refusals()
    assert event.details["reason"] == REASON_REFUSED and event.details["view"] == "assistant:conversation_new"


def test_the_streamed_ask_view_audits_a_refusal_too(sam: Any, someone_elses_conversation: Any):
    url = reverse("assistant:ask", kwargs={"conversation_id": someone_elses_conversation.pk})

    async def ask() -> int:
        client = AsyncClient()
        await client.aforce_login(sam)
        response = await client.post(url, {"question": "What did Sue ask?"}, headers={"accept": "application/x-ndjson"})
        return response.status_code

    assert async_to_sync(ask)() == 404
    (event,) = refusals()
    assert event.details["reason"] == REASON_HIDDEN and event.details["path"] == url
    assert not someone_elses_conversation.messages.exists()


def test_repeating_one_refusal_writes_one_event_per_window(sam: Any, someone_elses_conversation: Any):
    client = _client(sam)
    url = reverse("assistant:conversation", kwargs={"conversation_id": someone_elses_conversation.pk})

    for _ in range(5):
        assert client.get(url).status_code == 404

    assert len(refusals()) == 1


def test_a_scan_spends_the_per_minute_budget_then_stops_recording(sam: Any, settings: Any, profile_for_scan: Any):
    settings.AUDIT_ACCESS_DENIED_MAX_PER_MINUTE = 3
    client = _client(sam)

    for conversation in profile_for_scan:
        url = reverse("assistant:conversation", kwargs={"conversation_id": conversation.pk})
        assert client.get(url).status_code == 404

    events = refusals()
    assert len(events) == 3
    assert "rate_limited" in events[-1].details and "rate_limited" not in events[0].details


@pytest.fixture
def profile_for_scan(db: None) -> list[Any]:
    profile = AssistantProfileFactory.create(name="General", usable_by=["Staff"])
    owner = UserFactory.create(username="sue", roles=["Staff"])
    return [ConversationFactory.create(owner=owner, profile=profile) for _ in range(6)]


def test_allowed_requests_write_no_refusal(sam: Any):
    assert _client(sam).get(reverse("assistant:chat") + "?all").status_code == 200
    assert refusals() == []


def _hidden_objects(sam: Any, audrey: Any) -> dict[str, tuple[Any, str]]:
    """One object per app that exists but is hidden from its viewer, with the detail URL the viewer opens."""
    from audit.models import AuditExport
    from tests.customers.factories import CustomerFactory
    from tests.knowledge.factories import KnowledgeBaseFactory
    from tests.memory.factories import MemoryItemFactory

    other_auditor = UserFactory.create(username="alan", roles=["Auditor"])
    export = AuditExport.objects.create(requested_by=other_auditor, export_format="csv", up_to_seq=0)
    return {
        "knowledge base": (
            sam, reverse("knowledge:knowledge_base_detail", kwargs={"pk": KnowledgeBaseFactory.create().pk})
        ),
        "restricted customer": (
            sam,
            reverse("customers:customer_detail", kwargs={"customer_id": CustomerFactory.create(restricted=True).pk}),
        ),
        "private memory": (
            sam,
            reverse("memory:memory_detail", kwargs={
                "memory_id": MemoryItemFactory.create(scope="user", scope_user=UserFactory.create(username="sue")).pk
            }),
        ),
        "another auditor's export": (audrey, reverse("audit:export_status", kwargs={"export_id": export.pk})),
    }  # fmt: skip


HIDDEN_KINDS = ["knowledge base", "restricted customer", "private memory", "another auditor's export"]


@pytest.mark.parametrize("kind", HIDDEN_KINDS)
def test_each_app_reports_hidden_objects_as_hidden(kind: str, sam: Any, audrey: Any):
    viewer, url = _hidden_objects(sam, audrey)[kind]

    assert _client(viewer).get(url).status_code == 404

    (event,) = refusals()
    assert event.details["reason"] == REASON_HIDDEN and event.details["path"] == url
