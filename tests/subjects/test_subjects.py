"""Data-subject requests: access bundles, erasure with its verification, who may ask and who may download."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit
from governance.known_entities import known_entity_findings
from governance.vault import vault_entries, vault_open, vault_save
from knowledge.models import Chunk, Document
from portal.assistant.models import Conversation, Message
from portal.customers.models import Customer, Interaction
from portal.memory.models import MemoryItem
from portal.ml.models import CustomerPrediction, ModelVersion
from portal.retention.services import legal_hold_place
from portal.subjects.models import RequestStatus, SubjectRequest
from portal.subjects.scan import TOMBSTONE, VAULT_TABLE_LABEL, count_rows_with_values, text_columns
from portal.subjects.selectors import customer_values
from portal.subjects.services import (
    ERROR_ERASURE_STAFF,
    subject_bundle_delete,
    subject_bundles_expire,
    subject_request_create,
    subject_request_run,
)
from tests.accounts.factories import UserFactory
from tests.assistant.factories import ConversationFactory, MessageFactory
from tests.customers.factories import CustomerFactory, InteractionFactory
from tests.knowledge.factories import KnowledgeBaseFactory
from tests.responses import streamed

pytestmark = pytest.mark.django_db

NAME = "Philippa Quarrendon"
EMAIL = "philippa@quarrendon.example"
PHONE = "020 7946 0871"
ACCOUNT = "ACC-77421"


@pytest.fixture
def subject() -> Customer:
    return CustomerFactory.create(name=NAME, emails=[EMAIL], phones=[PHONE], account_numbers=[ACCOUNT],
                           postal_address="12 Wren Close\nOxford\nOX2 6PL", notes="Prefers letters.")  # fmt: skip


@pytest.fixture
def other() -> Customer:
    return CustomerFactory.create(name="Bartholomew Ingleby", emails=["bart@ingleby.example"], phones=["0161 496 0999"])


def _prediction(customer: Customer) -> CustomerPrediction:
    version = ModelVersion.objects.create(purpose="customer_churn", version=1, file_name="x.skops", sha256="0")
    return CustomerPrediction.objects.create(customer=customer, purpose="customer_churn", model_version=version,
                                             label="at_risk", probability=0.8)  # fmt: skip


def _run(officer: Any, django_capture_on_commit_callbacks: Any, **kwargs: Any) -> SubjectRequest:
    """Ask, then run the task's body here (the Celery path itself is tests/subjects/test_worker.py)."""
    with django_capture_on_commit_callbacks(execute=False):
        created = subject_request_create(actor=officer, **kwargs)
    return subject_request_run(request_id=created.pk)


def _zip(data: bytes) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(data))


# ---- access ---------------------------------------------------------------------------------------------
def test_an_access_bundle_holds_everything_about_the_customer_as_json_and_csv(
    olivia: Any, sam: Any, subject: Customer, other: Customer, django_capture_on_commit_callbacks: Any
) -> None:
    InteractionFactory.create(customer=subject, summary="Asked for a quote", full_text=f"Call {PHONE}")
    InteractionFactory.create(customer=other, summary="Not theirs")
    MemoryItem.objects.create(text=f"{NAME} prefers letters.", scope="customer", scope_customer=subject)
    conversation = ConversationFactory.create(owner=sam, customer=subject)
    MessageFactory.create(conversation=conversation, content=f"Write to {NAME}")
    _prediction(subject)
    audit(actor=sam, action="customers.customer_viewed", target=subject)

    done = _run(olivia, django_capture_on_commit_callbacks, kind="access", subject_type="customer",
                subject_id=subject.pk)  # fmt: skip

    assert done.status == RequestStatus.DONE, done.error
    assert done.expires_at is not None and done.percent == 100
    archive = _zip((settings.SUBJECT_BUNDLE_DIR / done.file_name).read_bytes())
    names = set(archive.namelist())
    assert {"bundle.json", "record.csv", "interactions.csv", "memories.csv", "conversations.csv", "messages.csv",
            "predictions.csv", "audit_events.csv"} <= names  # fmt: skip
    bundle = json.loads(archive.read("bundle.json"))
    sections = bundle["sections"]
    assert sections["record"][0]["name"] == NAME and sections["record"][0]["emails"] == [EMAIL]
    assert [row["summary"] for row in sections["interactions"]] == ["Asked for a quote"]
    assert sections["memories"][0]["text"].startswith(NAME)
    assert [row["content"] for row in sections["messages"]] == [f"Write to {NAME}"]
    assert sections["predictions"][0]["label"] == "at_risk"
    viewed = [row for row in sections["audit_events"] if row["action"] == "customers.customer_viewed"]
    assert len(viewed) == 1 and set(viewed[0]) == {"id", "seq", "created_at", "action", "object_type",
                                                     "object_id", "outcome"}  # fmt: skip
    assert "Asked for a quote" in archive.read("interactions.csv").decode()
    actions = list(AuditEvent.objects.filter(object_type="subjects.subjectrequest", object_id=str(done.pk))
                   .order_by("seq").values_list("action", flat=True))  # fmt: skip
    assert actions == ["subjects.requested", "subjects.started", "subjects.phase_completed", "subjects.completed"]


def test_a_staff_member_may_ask_for_a_copy_of_their_own_data_only(
    sam: Any, alice: Any, subject: Customer, django_capture_on_commit_callbacks: Any
) -> None:
    ConversationFactory.create(owner=sam, title="My own conversation")
    done = _run(sam, django_capture_on_commit_callbacks, kind="access", subject_type="user", subject_id=sam.pk)
    assert done.status == RequestStatus.DONE, done.error
    bundle = json.loads(_zip((settings.SUBJECT_BUNDLE_DIR / done.file_name).read_bytes()).read("bundle.json"))
    assert bundle["sections"]["record"][0]["username"] == "sam"
    assert "password" not in bundle["sections"]["record"][0]
    assert [row["title"] for row in bundle["sections"]["conversations"]] == ["My own conversation"]
    for kind, subject_type, subject_id in [("access", "user", alice.pk), ("access", "customer", subject.pk),
                                           ("erasure", "customer", subject.pk)]:  # fmt: skip
        with pytest.raises(PermissionDenied):
            subject_request_create(actor=sam, kind=kind, subject_type=subject_type, subject_id=subject_id)


def test_only_whoever_asked_sees_and_downloads_the_bundle_others_get_404(
    olivia: Any, alice: Any, sam: Any, subject: Customer, django_capture_on_commit_callbacks: Any
) -> None:
    done = _run(olivia, django_capture_on_commit_callbacks, kind="access", subject_type="customer",
                subject_id=subject.pk)  # fmt: skip
    detail, download = (reverse("subjects:request_detail", args=[done.pk]),
                        reverse("subjects:bundle_download", args=[done.pk]))  # fmt: skip
    client = Client()
    client.force_login(olivia)
    assert client.get(detail).status_code == 200
    response = client.get(download)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert NAME in json.loads(_zip(streamed(response)).read("bundle.json"))["sections"]["record"][0]["name"]
    assert AuditEvent.objects.filter(action="subjects.bundle_downloaded", object_id=str(done.pk)).count() == 1
    another_officer = UserFactory.create(username="otto", roles=["Governance officer"])
    for outsider in (another_officer, alice, sam):
        client.force_login(outsider)
        assert client.get(detail).status_code == 404
        assert client.get(download).status_code == 404
        assert client.post(reverse("subjects:bundle_delete", args=[done.pk])).status_code == 404
    assert not client.get(reverse("subjects:request_list")).context["requests"]


def test_staff_get_403_asking_for_a_customer_from_the_screen(sam: Any, subject: Customer) -> None:
    client = Client()
    client.force_login(sam)
    assert client.get(reverse("subjects:request_list")).status_code == 200
    response = client.post(reverse("subjects:request_create"),
                           {"kind": "access", "subject_type": "customer", "subject_id": subject.pk})  # fmt: skip
    assert response.status_code == 403
    assert not SubjectRequest.objects.exists()


def test_a_bundle_is_deleted_on_request_and_when_it_expires(
    olivia: Any, subject: Customer, django_capture_on_commit_callbacks: Any
) -> None:
    first = _run(olivia, django_capture_on_commit_callbacks, kind="access", subject_type="customer",
                 subject_id=subject.pk)  # fmt: skip
    second = _run(olivia, django_capture_on_commit_callbacks, kind="access", subject_type="customer",
                  subject_id=subject.pk)  # fmt: skip
    first_path, second_path = (
        settings.SUBJECT_BUNDLE_DIR / first.file_name,
        settings.SUBJECT_BUNDLE_DIR / second.file_name,
    )
    subject_bundle_delete(actor=olivia, subject_request=first)
    assert not first_path.exists() and second_path.exists()
    assert subject_bundles_expire(now=timezone.now()) == 0
    assert subject_bundles_expire(now=timezone.now() + dt.timedelta(days=30)) == 1
    assert not second_path.exists()
    second.refresh_from_db()
    assert not second.downloadable
    reasons = AuditEvent.objects.filter(action="subjects.bundle_deleted").values_list("details__why", flat=True)
    assert sorted(reasons) == ["expired", "requester"]


# ---- erasure ------------------------------------------------------------------------------------------
def test_erasure_deletes_what_is_about_them_scrubs_the_rest_and_verifies_every_table(
    olivia: Any, sam: Any, subject: Customer, other: Customer, django_capture_on_commit_callbacks: Any
) -> None:
    InteractionFactory.create(customer=subject, full_text=f"Call {PHONE}")
    MemoryItem.objects.create(text=f"{NAME} prefers letters.", scope="customer", scope_customer=subject)
    organisation_memory = MemoryItem.objects.create(text=f"Ask {NAME} about Oxford deliveries.")
    _prediction(subject)
    about = ConversationFactory.create(owner=sam, customer=subject, title=f"Call with {NAME}")
    MessageFactory.create(conversation=about, content=f"Reply to {EMAIL}", manifest={"egress": {"values": [EMAIL]}})
    vault = vault_open(conversation_key=f"assistant-conversation-{about.pk}")
    vault.placeholder("PERSON", NAME)
    vault_save(vault=vault)
    # another customer's conversation quotes them: it stays, without their values
    theirs = ConversationFactory.create(owner=sam, customer=other)
    kept_message = MessageFactory.create(conversation=theirs, content=f"Referred by {NAME} ({PHONE}), thanks!")
    other_vault = vault_open(conversation_key=f"assistant-conversation-{theirs.pk}")
    other_vault.placeholder("EMAIL", EMAIL)
    other_vault.placeholder("PERSON", "Bartholomew Ingleby")
    vault_save(vault=other_vault)
    Customer.objects.filter(pk=other.pk).update(notes=f"Friend of {NAME}.")
    assert known_entity_findings(f"Please call {NAME}")  # the detector knows them before
    values = customer_values(subject.pk)
    assert NAME in values and EMAIL in values and ACCOUNT in values
    before = count_rows_with_values(values, exclude={"customers_customer": [subject.pk]})
    assert before["assistant_message"] == 2 and before[VAULT_TABLE_LABEL] == 2

    done = _run(olivia, django_capture_on_commit_callbacks, kind="erasure", subject_type="customer",
                subject_id=subject.pk, reason="letter ref 2026/114")  # fmt: skip

    assert done.status == RequestStatus.DONE, done.error
    assert done.values_found == 0
    assert set(done.verification["tables"]) == set(text_columns()) | {VAULT_TABLE_LABEL}
    assert not Customer.objects.filter(pk=subject.pk).exists()
    assert not Conversation.objects.filter(pk=about.pk).exists()
    assert not Interaction.objects.filter(customer_id=subject.pk).exists()
    assert not CustomerPrediction.objects.filter(customer_id=subject.pk).exists()
    assert not MemoryItem.objects.filter(scope_customer_id=subject.pk).exists()
    kept_message.refresh_from_db()
    assert kept_message.content == f"Referred by {TOMBSTONE} ({TOMBSTONE}), thanks!"
    organisation_memory.refresh_from_db()
    assert organisation_memory.text == f"Ask {TOMBSTONE} about Oxford deliveries."
    assert Customer.objects.get(pk=other.pk).notes == f"Friend of {TOMBSTONE}."
    assert sorted(vault_entries(conversation_key=f"assistant-conversation-{theirs.pk}").values()) == [
        "Bartholomew Ingleby", TOMBSTONE]  # fmt: skip
    from governance import known_entities

    known_entities.invalidate()
    text = f"Please call {NAME}"
    assert not [f for f in known_entity_findings(text) if text[f.start : f.end] == NAME]
    phases = [step["phase"] for step in done.counts]
    assert phases == ["delete", "scrub", "review", "dictionary", "verify"]
    events = AuditEvent.objects.filter(object_type="subjects.subjectrequest", object_id=str(done.pk)).order_by("seq")
    assert [e.action for e in events] == ["subjects.requested", "subjects.started", *["subjects.phase_completed"] * 5,
                                          "subjects.completed"]  # fmt: skip
    trail = json.dumps([e.details for e in AuditEvent.objects.all()])
    for value in (NAME, EMAIL, PHONE, "letter ref 2026/114"):
        assert value not in trail


def test_erasure_of_a_customer_under_legal_hold_is_refused_naming_the_hold(
    olivia: Any, subject: Customer, django_capture_on_commit_callbacks: Any
) -> None:
    hold = legal_hold_place(actor=olivia, subject="customer", subject_id=subject.pk, reason="dispute 44")
    with pytest.raises(ValidationError) as refused:
        subject_request_create(actor=olivia, kind="erasure", subject_type="customer", subject_id=subject.pk)
    assert f"legal hold #{hold.pk} on customer #{subject.pk} (dispute 44)" in " ".join(refused.value.messages)
    assert not SubjectRequest.objects.exists() and Customer.objects.filter(pk=subject.pk).exists()
    refusal = AuditEvent.objects.get(action="subjects.request_refused")
    assert refusal.outcome == "failure" and refusal.details["legal_holds"] == [hold.pk]
    client = Client()
    client.force_login(olivia)
    response = client.post(reverse("subjects:request_create"),
                           {"kind": "erasure", "subject_type": "customer", "subject_id": subject.pk})  # fmt: skip
    assert response.status_code == 400 and f"legal hold #{hold.pk}" in response.content.decode()


def test_a_hold_placed_after_the_request_stops_the_erasure_when_it_runs(
    olivia: Any, subject: Customer, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        created = subject_request_create(actor=olivia, kind="erasure", subject_type="customer", subject_id=subject.pk)
    hold = legal_hold_place(actor=olivia, subject="customer", subject_id=subject.pk, reason="late dispute")
    done = subject_request_run(request_id=created.pk)
    assert done.status == RequestStatus.FAILED and f"legal hold #{hold.pk}" in done.error
    assert Customer.objects.filter(pk=subject.pk).exists()
    assert AuditEvent.objects.filter(action="subjects.failed", object_id=str(done.pk)).exists()


def test_a_conversation_about_them_kept_by_another_hold_stays_without_their_values(
    olivia: Any, sam: Any, subject: Customer, django_capture_on_commit_callbacks: Any
) -> None:
    kept = ConversationFactory.create(owner=sam, customer=subject)
    message = MessageFactory.create(conversation=kept, content=f"{NAME} disputes invoice 9")
    legal_hold_place(actor=olivia, subject="conversation", subject_id=kept.pk, reason="other matter")
    done = _run(olivia, django_capture_on_commit_callbacks, kind="erasure", subject_type="customer",
                subject_id=subject.pk)  # fmt: skip
    assert done.status == RequestStatus.DONE and done.values_found == 0, done.error
    message.refresh_from_db()
    assert message.content == f"{TOMBSTONE} disputes invoice 9"
    assert done.counts[0]["counts"]["kept_conversation_ids"] == [kept.pk]


def test_the_verification_finds_a_value_left_in_an_unexpected_table(
    olivia: Any, subject: Customer, django_capture_on_commit_callbacks: Any
) -> None:
    # The trail is append-only and the scrub leaves it alone: a value someone wrote into it is found and counted.
    audit(actor=olivia, action="test.careless_event", details={"note": f"spoke to {EMAIL}"})
    done = _run(olivia, django_capture_on_commit_callbacks, kind="erasure", subject_type="customer",
                subject_id=subject.pk)  # fmt: skip
    assert done.status == RequestStatus.DONE
    assert done.values_found == 1
    assert done.verification["tables"]["audit_auditevent"] == 1
    assert done.verification["tables_with_values"] == ["audit_auditevent"]
    client = Client()
    client.force_login(olivia)
    page = client.get(reverse("subjects:request_detail", args=[done.pk])).content.decode()
    assert "1 value found after erasure" in page and "audit_auditevent" in page


def test_knowledge_documents_that_mention_them_are_reported_for_review(
    olivia: Any, subject: Customer, django_capture_on_commit_callbacks: Any
) -> None:
    base = KnowledgeBaseFactory.create()
    document = Document.objects.create(knowledge_base=base, title="Client list", original_filename="list.txt",
                                       status="ready")  # fmt: skip
    Chunk.objects.create(document=document, knowledge_base=base, generation=1, position=0,
                         text=f"Key clients: {NAME}, phone {PHONE}.", embedding=[0.0] * 384)  # fmt: skip
    done = _run(olivia, django_capture_on_commit_callbacks, kind="erasure", subject_type="customer",
                subject_id=subject.pk)  # fmt: skip
    assert done.status == RequestStatus.DONE
    assert done.documents_for_review == [{"document_id": document.pk, "knowledge_base_id": base.pk, "chunks": 1}]
    assert done.verification["tables"]["knowledge_chunk"] == 1  # the search index still holds it: not hidden
    assert Chunk.objects.get(document=document).text.startswith("Key clients: Philippa")  # left for the officer


def test_a_value_another_customer_also_holds_is_theirs_and_stays(olivia: Any, subject: Customer) -> None:
    CustomerFactory.create(name="Switchboard Shared", phones=[PHONE], emails=["shared@example.test"])
    assert PHONE not in customer_values(subject.pk)
    assert NAME in customer_values(subject.pk)


def test_erasure_of_a_staff_member_is_refused_with_the_reason(olivia: Any, sam: Any) -> None:
    with pytest.raises(ValidationError) as refused:
        subject_request_create(actor=olivia, kind="erasure", subject_type="user", subject_id=sam.pk)
    assert refused.value.messages == [ERROR_ERASURE_STAFF]


def test_every_text_column_of_every_model_is_searched() -> None:
    columns = text_columns()
    assert {"content", "manifest", "citations"} <= {c.column for c in columns["assistant_message"]}
    assert {"emails", "notes", "name"} <= {c.column for c in columns["customers_customer"]}
    assert "text" in {c.column for c in columns["knowledge_chunk"]}
    assert "details" in {c.column for c in columns["audit_auditevent"]}
    assert "search_vector" not in {c.column for c in columns["memory_memoryitem"]}
    assert not Message.objects.exists()


def test_the_request_screen_polls_while_the_job_runs_and_stops_when_it_is_done(
    olivia: Any, subject: Customer, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        created = subject_request_create(actor=olivia, kind="access", subject_type="customer", subject_id=subject.pk)
    client = Client()
    client.force_login(olivia)
    url = reverse("subjects:request_detail", args=[created.pk])
    fragment = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<div id="request-progress"') and 'hx-trigger="every 1s"' in fragment
    subject_request_run(request_id=created.pk)
    fragment = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert "hx-trigger" not in fragment and "Download the bundle" in fragment


def test_a_request_whose_worker_died_ends_failed_and_audited_not_running_for_ever(
    olivia: Any, subject: Customer
) -> None:
    import datetime as dt

    from portal.subjects.services import subject_requests_fail_stalled

    long_ago = timezone.now() - dt.timedelta(seconds=settings.JOBS_STALE_AFTER_SECONDS + 60)
    common = {"kind": "erasure", "subject_type": "customer", "subject_id": subject.pk, "requested_by": olivia}
    dead = SubjectRequest.objects.create(**common, status=RequestStatus.RUNNING, phase="scrub", started_at=long_ago,
                                         heartbeat_at=long_ago)  # fmt: skip
    alive = SubjectRequest.objects.create(**common, status=RequestStatus.RUNNING, started_at=long_ago,
                                          heartbeat_at=timezone.now())  # fmt: skip
    never_beat = SubjectRequest.objects.create(**common, status=RequestStatus.RUNNING, started_at=long_ago)

    assert subject_requests_fail_stalled() == 2

    for stalled in (dead, alive, never_beat):
        stalled.refresh_from_db()
    assert dead.status == RequestStatus.FAILED and "during the scrub phase" in dead.error
    assert never_beat.status == RequestStatus.FAILED
    assert alive.status == RequestStatus.RUNNING
    failed = AuditEvent.objects.filter(action="subjects.failed", object_id=str(dead.pk)).get()
    assert failed.details["error"] == "WorkerLost" and failed.outcome == "failure"
    assert subject_requests_fail_stalled() == 0  # a failed request is left alone
