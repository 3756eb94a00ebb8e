"""Nothing a person typed reaches the audit trail or the logs: the journeys run with canary values planted in
every box (searches, a question, a title, a comment, filenames, a mistyped sign-in, an auditor's filter),
then every event of the trail and every log line is searched for them.

The trail is append-only and goes out in exports, so a card number pasted into a search box would stay there
for good; the events keep keyed hashes, lengths and counts instead (audit/privacy.py).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from audit.privacy import text_fingerprint, text_hmac
from portal.core.log_redaction import QueryStringRedactingFilter, redact_query_strings
from tests.accounts.factories import UserFactory
from tests.assistant.factories import AssistantProfileFactory, knowledge_base_with
from tests.customers.factories import CustomerFactory
from tests.knowledge.factories import grant
from tests.responses import streamed
from tests.servers import uvicorn

CARD = "4556 7375 8689 9855"
IBAN = "DE89 3704 0044 0532 0130 00"
API_KEY = "sk-proj-Canary7Yq2Lm9Xw4Rt8Pz3Kd"
PASSWORD = "Tr0ub4dor&3-canarypass"
NAME = "Zephyrine Quackenbush"
EMAIL = "zephyrine.quackenbush@canary.example"
TYPED = {
    "knowledge search": f"refunds for card {CARD} canary-knowledge-search",
    "customer search": "canary-customer-search Quackenbush",
    "question": f"Tell {NAME} ({EMAIL}) when refunds are paid, canary-question",
    "title": f"canary-title about {NAME}",
    "comment": f"canary-comment: wrong IBAN {IBAN}",
    "document filename": f"canary-filename {NAME} sick note.txt",
    "import filename": "canary-import Quackenbush family.csv",
    "sign-in username": PASSWORD,
    "audit filter": f"canary-audit-filter {API_KEY}",
    "refused path query": "canary-refused-query",
}
# What must never appear: each typed text and the values inside it, case-insensitively.
CANARIES = sorted(
    {*TYPED.values(), CARD, IBAN, API_KEY, PASSWORD, NAME, "Quackenbush", EMAIL}
    | {word for text in TYPED.values() for word in text.split() if word.startswith("canary-")}
)


def _trail_text(event: AuditEvent) -> str:
    return " ".join(
        [event.actor_username, event.object_type, event.object_id, json.dumps(event.details, ensure_ascii=False)]
    )


def _leaks(texts: list[str]) -> list[tuple[str, str]]:
    return [(canary, text[:300]) for text in texts for canary in CANARIES if canary.casefold() in text.casefold()]


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def people(db: None) -> dict[str, Any]:
    return {
        "sam": UserFactory.create(username="sam", roles=["Staff"]),
        "ada": UserFactory.create(username="ada", roles=["Administrator", "Staff"]),
        "audrey": UserFactory.create(username="audrey", roles=["Auditor"]),
    }


def _journeys(people: dict[str, Any]) -> None:
    from knowledge import services as knowledge_services
    from portal.assistant.models import Conversation
    from portal.customers.csv_io import customers_import

    sam, ada, audrey = people["sam"], people["ada"], people["audrey"]
    handbook = knowledge_base_with(name="Handbook", passages=[("Refunds", "Refunds are paid in 14 days.", 1)])
    profile = AssistantProfileFactory.create(name="Helper", usable_by=["Staff"], knowledge_bases=[handbook])
    grant(handbook, "change", user=ada)
    CustomerFactory.create(name="Ordinary Person")
    staff = _client(sam)

    # searches
    assert staff.get(reverse("knowledge:search"), {"q": TYPED["knowledge search"]}).status_code == 200
    assert staff.get(reverse("customers:customer_list"), {"q": TYPED["customer search"]}).status_code == 200
    # ask, rename, feedback, export, delete (the offline model answers: no catalog model is configured)
    response = staff.post(reverse("assistant:conversation_new"), {"profile": profile.pk})
    conversation = Conversation.objects.get(owner=sam)
    assert response.status_code == 302
    ask = reverse("assistant:ask", kwargs={"conversation_id": conversation.pk})
    assert staff.post(ask, {"question": TYPED["question"]}).status_code == 302
    rename = reverse("assistant:conversation_rename", kwargs={"conversation_id": conversation.pk})
    assert staff.post(rename, {"title": TYPED["title"]}).status_code in (200, 302)
    answer = conversation.messages.get(role="assistant")
    feedback = reverse("assistant:feedback", kwargs={"message_id": answer.pk})
    assert staff.post(feedback, {"rating": "-1", "comment": TYPED["comment"]}).status_code in (200, 302)
    export = reverse("assistant:conversation_export", kwargs={"conversation_id": conversation.pk})
    for fmt in ("md", "html"):  # the files hold the typed text; the trail records only the access
        assert TYPED["title"].encode() in staff.get(export, {"format": fmt}).content
    delete = reverse("assistant:conversation_delete", kwargs={"conversation_id": conversation.pk})
    assert staff.post(delete).status_code == 302
    # a document uploaded and deleted, a customer file imported
    uploaded = knowledge_services.document_upload(
        actor=ada, knowledge_base=handbook, filename=TYPED["document filename"], data=b"Holidays: 25 days."
    )
    knowledge_services.document_delete(actor=ada, document=uploaded.stored)
    report = customers_import(actor=ada, data=b"name\nImported Person\n", filename=TYPED["import filename"])
    assert report.imported == 1
    # a sign-in with the password typed into the username box, a refused page with a query string
    Client().post(reverse("login"), {"username": TYPED["sign-in username"], "password": "x"})
    assert staff.get(reverse("governance:overview"), {"q": TYPED["refused path query"]}).status_code == 403
    # an auditor's free-text filter, exported
    auditor = _client(audrey)
    assert auditor.get(reverse("audit:event_list"), {"text": TYPED["audit filter"]}).status_code == 200
    streamed(auditor.get(reverse("audit:export_csv"), {"text": TYPED["audit filter"]}))


@pytest.mark.django_db
def test_no_audit_event_and_no_log_line_holds_what_people_typed(
    people: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    before = AuditEvent.objects.count()

    _journeys(people)

    events = list(AuditEvent.objects.order_by("seq"))[before:]
    actions = {event.action for event in events}
    assert {
        "knowledge.searched",
        "customers.customers_listed",
        "assistant.question_asked",
        "assistant.conversation_renamed",
        "assistant.feedback_given",
        "assistant.conversation_exported",
        "assistant.conversation_deleted",
        "knowledge.document_uploaded",
        "knowledge.document_deleted",
        "customers.customers_imported",
        "auth.login_failed",
        "audit.access_denied",
        "audit.exported",
        "governance.egress_decided",
        "assistant.answer_stored",
    } <= actions  # every journey ran and was recorded
    assert _leaks([_trail_text(event) for event in events]) == []
    assert _leaks([record.getMessage() for record in caplog.records]) == []
    assert _leaks([caplog.text]) == []


@pytest.mark.django_db
def test_the_trail_keeps_a_keyed_hash_length_and_finding_counts_instead(people: dict[str, Any]) -> None:
    _journeys(people)

    query = TYPED["knowledge search"]
    (searched,) = [  # the search page's event (the assistant's retrieval records its question the same way)
        event.details
        for event in AuditEvent.objects.filter(action="knowledge.searched")
        if event.details["query_hmac"] == text_hmac(query)
    ]
    assert searched["query_chars"] == len(query)
    assert searched["query_findings"] == {"PAYMENT_CARD": 1}
    listed = AuditEvent.objects.filter(action="customers.customers_listed", details__search=True).latest("seq")
    assert listed.details["search_hmac"] == text_hmac(TYPED["customer search"])
    renamed = AuditEvent.objects.get(action="assistant.conversation_renamed").details
    assert renamed == text_fingerprint(TYPED["title"], name="title")
    deleted = AuditEvent.objects.get(action="assistant.conversation_deleted")
    assert set(deleted.details) == {"conversation_id", "messages"} and deleted.details["messages"] == 2
    failed = AuditEvent.objects.filter(action="auth.login_failed").latest("seq")
    assert failed.actor_username == "(no such account)" and failed.details["typed_hmac"] == text_hmac(PASSWORD)
    exported = AuditEvent.objects.get(action="audit.exported").details["filter"]
    assert exported["text_hmac"] == text_hmac(TYPED["audit filter"]) and exported["text_findings"] == {"CREDENTIAL": 1}
    document = AuditEvent.objects.get(action="knowledge.document_deleted").details
    assert set(document) == {"document_id", "knowledge_base_id", "version"}


def test_the_hash_is_keyed(settings: Any) -> None:
    settings.AUDIT_TEXT_HASH_KEY = "one key"
    first = text_hmac("4556 7375 8689 9855")
    settings.AUDIT_TEXT_HASH_KEY = "another key"
    assert text_hmac("4556 7375 8689 9855") != first
    settings.AUDIT_TEXT_HASH_KEY = ""
    assert len(text_hmac("x")) == 64


# ---- the web server's access log ------------------------------------------------------------------------
def test_the_filter_keeps_the_path_and_drops_the_query() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/knowledge/search/?q={CARD}&page=2", "1.1", 200), None,
    )  # fmt: skip
    assert QueryStringRedactingFilter().filter(record) is True
    assert record.getMessage() == '127.0.0.1:5000 - "GET /knowledge/search/?[redacted] HTTP/1.1" 200'
    assert redact_query_strings('"GET /customers/?q=x HTTP/1.1" 200') == '"GET /customers/?[redacted] HTTP/1.1" 200'


def _session_cookie(user: Any) -> str:
    """A signed-in session in the test database, made as the test client makes one (whatever the backends)."""
    client = Client()
    client.force_login(user)
    return str(client.cookies[settings.SESSION_COOKIE_NAME].value)


@pytest.mark.django_db(transaction=True)
def test_uvicorns_access_log_shows_the_paths_but_not_what_was_searched(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    sam = UserFactory.create(username="sam", roles=["Staff"])
    knowledge_base_with(name="Handbook", passages=[("Refunds", "Refunds are paid in 14 days.", 1)])
    env = dict(subprocess_env, PORTAL_DB_NAME=str(connection.settings_dict["NAME"]), PORTAL_DEBUG="1")
    log_path = tmp_path / "uvicorn.log"
    before = AuditEvent.objects.count()

    with uvicorn(env, log_path, log_level="info") as url:
        cookies = {settings.SESSION_COOKIE_NAME: _session_cookie(sam)}
        with httpx.Client(base_url=url, cookies=cookies, timeout=120) as client:
            assert client.get("/knowledge/search/", params={"q": TYPED["knowledge search"]}).status_code == 200
            assert client.get("/customers/", params={"q": TYPED["customer search"]}).status_code == 200
        with httpx.Client(base_url=url, timeout=120) as anonymous:  # sent to sign in, with the query in `next`
            assert anonymous.get("/customers/", params={"q": TYPED["customer search"]}).status_code == 302

    log = log_path.read_text()
    assert '"GET /knowledge/search/?[redacted] HTTP/1.1" 200' in log
    assert '"GET /customers/?[redacted] HTTP/1.1" 200' in log and '"GET /customers/?[redacted] HTTP/1.1" 302' in log
    assert _leaks([log]) == []
    events = list(AuditEvent.objects.order_by("seq"))[before:]
    assert "knowledge.searched" in {event.action for event in events}
    assert _leaks([_trail_text(event) for event in events]) == []
