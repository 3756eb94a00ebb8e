from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit import links
from audit.models import AuditEvent, AuditExport, Outcome
from audit.services import audit
from portal.assistant.models import Conversation
from tests.assistant.factories import AssistantProfileFactory
from tests.audit.factories import TAMPERING, superuser_sql, write_events

pytestmark = pytest.mark.django_db


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("who", ["audrey", "alice"])
def test_auditors_and_administrators_review_the_trail(who: str, request: pytest.FixtureRequest) -> None:
    user = request.getfixturevalue(who)
    event = audit(actor=user, action="test.reviewed", details={"note": "<b>bold</b>"})
    client = _client(user)
    listing = client.get(reverse("audit:event_list"))
    assert listing.status_code == 200
    assert b"test.reviewed" in listing.content
    detail = client.get(reverse("audit:event_detail", args=[event.seq]))
    assert detail.status_code == 200
    assert b"&lt;b&gt;bold&lt;/b&gt;" in detail.content  # details are escaped, never rendered as HTML
    assert event.hash.encode() in detail.content
    assert b"the hash matches this content" in detail.content


@pytest.mark.parametrize("who", ["sam", "olivia", "oscar"])
def test_everyone_else_is_refused(who: str, request: pytest.FixtureRequest) -> None:
    user = request.getfixturevalue(who)
    event = audit(actor=None, action="test.hidden")
    client = _client(user)
    for url in (
        reverse("audit:event_list"),
        reverse("audit:event_detail", args=[event.seq]),
        reverse("audit:export_csv"),
        reverse("audit:export_jsonl"),
        reverse("audit:export_list"),
    ):
        assert client.get(url).status_code == 403, url
    assert client.post(reverse("audit:export_request"), {"export_format": "csv"}).status_code == 403


def test_anonymous_visitors_are_sent_to_sign_in() -> None:
    response = Client().get(reverse("audit:event_list"))
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_an_unknown_event_is_404(audrey: Any) -> None:
    assert _client(audrey).get(reverse("audit:event_detail", args=[10**9])).status_code == 404


def test_the_navigation_shows_audit_only_to_reviewers(audrey: Any, sam: Any) -> None:
    assert b'href="/audit/"' in _client(audrey).get(reverse("home")).content
    assert b'href="/audit/"' not in _client(sam).get(reverse("home")).content


def _listed_seqs(response: Any) -> set[int]:
    return {event.seq for event in response.context["page"].events}


def test_filters_narrow_the_list(audrey: Any, sam: Any, alice: Any) -> None:
    sam_login = audit(actor=sam, action="auth.login", target=sam)
    alice_change = audit(actor=alice, action="user.roles_changed", target=sam, details={"after": ["Staff"]})
    failed = audit(actor=None, actor_username="mallory", action="auth.login_failed", outcome=Outcome.FAILURE)
    model_call = audit(actor=sam, action="routing.model_called", details={"provider": "anthropic", "tokens": 12})
    client = _client(audrey)
    url = reverse("audit:event_list")
    cases: list[tuple[dict[str, str], set[int]]] = [
        ({"actor": "sam"}, {sam_login.seq, model_call.seq}),
        ({"role": "Administrator"}, {alice_change.seq}),
        ({"action": "auth.login"}, {sam_login.seq}),
        ({"action": "auth", "actor": "mallory"}, {failed.seq}),
        ({"object_type": "auth.user", "object_id": str(sam.pk)}, {sam_login.seq, alice_change.seq}),
        ({"provider": "anthropic"}, {model_call.seq}),
        ({"outcome": "failure"}, {failed.seq}),
        ({"text": "mallory"}, {failed.seq}),
        ({"text": "ANTHROPIC"}, {model_call.seq}),
    ]
    for params, expected in cases:
        response = client.get(url, params)
        assert response.status_code == 200
        assert _listed_seqs(response) & {sam_login.seq, alice_change.seq, failed.seq, model_call.seq} == expected, (
            params
        )


def test_the_time_range_filter(audrey: Any) -> None:
    (event,) = write_events(1)
    client = _client(audrey)
    url = reverse("audit:event_list")
    now = timezone.now()
    fmt = "%Y-%m-%dT%H:%M"
    inside = client.get(url, {"start": (now - timedelta(minutes=5)).strftime(fmt)})
    assert event.seq in _listed_seqs(inside)
    later = client.get(url, {"start": (now + timedelta(minutes=5)).strftime(fmt)})
    assert event.seq not in _listed_seqs(later)
    bad = client.get(url, {"start": now.strftime(fmt), "end": (now - timedelta(hours=1)).strftime(fmt)})
    assert bad.status_code == 400
    assert b"must come after its start" in bad.content


def test_pages_follow_the_chain_newest_first(audrey: Any) -> None:
    events = write_events(120, action="test.paged")
    client = _client(audrey)
    url = reverse("audit:event_list")
    first = client.get(url, {"action": "test.paged"})
    page = first.context["page"]
    assert [event.seq for event in page.events] == [event.seq for event in reversed(events[-50:])]
    assert page.newer_than is None
    second = client.get(url, {"action": "test.paged", "before": page.older_than})
    page2 = second.context["page"]
    assert [event.seq for event in page2.events] == [event.seq for event in reversed(events[20:70])]
    assert f"after={page2.newer_than}".encode() in second.content
    back = client.get(url, {"action": "test.paged", "after": page2.newer_than})
    assert [event.seq for event in back.context["page"].events] == [event.seq for event in page.events]
    last = client.get(url, {"action": "test.paged", "before": page2.older_than})
    assert len(last.context["page"].events) == 20
    assert last.context["page"].older_than is None


def test_htmx_gets_only_the_results_fragment(audrey: Any) -> None:
    write_events(1)
    response = _client(audrey).get(reverse("audit:event_list"), {"action": "test.event"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b'id="event-results"' in response.content
    assert b"<html" not in response.content


def test_the_object_page_lists_its_events_and_links_to_the_object(alice: Any, audrey: Any, sam: Any) -> None:
    event = audit(actor=audrey, action="user.updated", target=sam)
    client = _client(alice)  # an administrator: reviews the trail and may open the user's page
    response = client.get(reverse("audit:event_list"), {"object_type": "auth.user", "object_id": sam.pk})
    assert event.seq in _listed_seqs(response)
    assert response.context["object_link"] == reverse("accounts:user_edit", args=[sam.pk])
    detail = client.get(reverse("audit:event_detail", args=[event.seq]))
    assert reverse("accounts:user_edit", args=[sam.pk]).encode() in detail.content
    assert b"all events of this object" in detail.content


def test_an_auditor_gets_no_link_to_a_page_they_cannot_open(audrey: Any, sam: Any, alice: Any) -> None:
    """An auditor reads the events, but the user screen (manage_users), another person's conversation and
    another person's export are not theirs to open: no link that would end in a 403 or 404."""
    conversation = Conversation.objects.create(owner=sam, profile=AssistantProfileFactory.create(usable_by=["Staff"]))
    export = AuditExport.objects.create(requested_by=alice, export_format="csv", up_to_seq=1)
    event = audit(
        actor=sam, action="assistant.answered", target=sam,
        details={"conversation_id": conversation.pk, "export_id": export.pk},
    )  # fmt: skip
    client = _client(audrey)
    detail = client.get(reverse("audit:event_detail", args=[event.seq]))
    assert detail.context["object_link"] is None
    assert detail.context["related"] == []
    assert reverse("accounts:user_edit", args=[sam.pk]).encode() not in detail.content
    assert reverse("assistant:conversation", args=[conversation.pk]).encode() not in detail.content
    listing = client.get(reverse("audit:event_list"), {"object_type": "auth.user", "object_id": sam.pk})
    assert listing.context["object_link"] is None
    # the conversation's owner (not an auditor here) would get the link; the export's owner too
    assert links.object_url("assistant.conversation", conversation.pk, viewer=sam) is not None
    assert links.object_url("assistant.conversation", conversation.pk, viewer=alice) is None
    assert links.object_url("audit.auditexport", export.pk, viewer=alice) is not None
    assert links.object_url("audit.auditexport", export.pk, viewer=audrey) is None


def test_the_detail_page_links_to_its_neighbours_in_the_chain(audrey: Any) -> None:
    first, middle, last = write_events(3)
    response = _client(audrey).get(reverse("audit:event_detail", args=[middle.seq]))
    assert reverse("audit:event_detail", args=[first.seq]).encode() in response.content
    assert reverse("audit:event_detail", args=[last.seq]).encode() in response.content


def test_an_object_type_without_a_page_gets_no_link() -> None:
    assert links.object_url("nothing.here", "1") is None
    links.register_url_name("test.dangling", "no-such-url")
    assert links.object_url("test.dangling", "1") is None
    assert links.object_url("auth.user", "not-a-number") is None


def test_every_listed_action_of_the_catalogue_is_offered(audrey: Any) -> None:
    response = _client(audrey).get(reverse("audit:event_list"))
    assert b'<option value="auth.login_failed">' in response.content


@TAMPERING
def test_the_detail_page_flags_an_altered_event(audrey: Any) -> None:
    (event,) = write_events(1)
    superuser_sql("UPDATE audit_auditevent SET action = 'test.forged' WHERE id = %s", [event.id])
    response = _client(audrey).get(reverse("audit:event_detail", args=[event.seq]))
    assert b"does NOT match" in response.content
    assert AuditEvent.objects.get(pk=event.pk).action == "test.forged"


def test_ids_in_the_details_link_to_their_objects(audrey: Any, sam: Any) -> None:
    links.register_url_name("test.thing", "accounts:user_edit", "user_id")
    links.register_visibility("test.thing", lambda viewer, object_id: True)
    links.DETAIL_KEY_TYPES["thing_ids"] = "test.thing"
    try:
        event = audit(actor=sam, action="test.linked", details={"thing_ids": [sam.pk, "x"]})
        response = _client(audrey).get(reverse("audit:event_detail", args=[event.seq]))
    finally:
        del links.DETAIL_KEY_TYPES["thing_ids"]
    assert response.context["related"] == [("test.thing", str(sam.pk), reverse("accounts:user_edit", args=[sam.pk]))]
