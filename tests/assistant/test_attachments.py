"""Files attached to a conversation: ingested into its own unlisted knowledge base, searched only there,
deleted with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from knowledge import selectors as knowledge_selectors
from knowledge.extraction import ERROR_EMPTY, ERROR_NOT_PDF
from knowledge.models import Chunk, Document, DocumentStatus, KnowledgeBase
from portal.assistant import pipeline, services
from portal.assistant.forms import ERROR_NO_ATTACHMENT
from tests.accounts.factories import UserFactory
from tests.assistant.factories import AssistantProfileFactory, ConversationFactory
from tests.assistant.helpers import run_answer, stored_answer

pytestmark = pytest.mark.django_db

PARKING = b"# Parking\n\nParking permits for the north car park are issued by the facilities desk on Fridays.\n"
PARKING_PASSAGE = "Parking permits for the north car park are issued by the facilities desk on Fridays."
CONTACT_EMAIL = "parking.desk@example.org"
CONTACT = f"# Permits\n\nQuestions about parking permits go to {CONTACT_EMAIL} before noon.\n".encode()


@pytest.fixture(autouse=True)
def _knowledge_files(knowledge_storage: Path) -> Path:
    """Every test here keeps its uploads in its own temporary folder (tests/conftest.py)."""
    return knowledge_storage


@pytest.fixture
def attach(eager_tasks: None, django_capture_on_commit_callbacks: Any) -> Any:
    """Attach one file through the service and run its ingestion, as the upload's commit queues it."""

    def attach_file(actor: Any, conversation: Any, name: str, data: bytes) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            result = services.conversation_attach(
                actor=actor, conversation=conversation, uploaded_file=SimpleUploadedFile(name, data)
            )
        conversation.refresh_from_db()
        return result

    return attach_file


def found(user: Any, conversation: Any, question: str) -> str:
    """The passages a question in this conversation retrieves, one text."""
    authorization = pipeline.authorize(user=user, conversation=conversation)
    context = pipeline.retrieve(user=user, question=question, knowledge_bases=authorization.knowledge_bases)
    return "\n".join(chunk.text for chunk in context.chunks)


# ---- attaching and asking
def test_an_attached_file_is_ingested_into_the_conversations_own_base_and_answers_there(
    sam: Any, conversation: Any, attach: Any
):
    result = attach(sam, conversation, "parking.md", PARKING)

    assert result.outcome == "created"
    document = Document.objects.get(pk=result.document.pk)
    assert document.status == DocumentStatus.READY, document.error
    base = conversation.attachments_base
    assert document.knowledge_base == base and base.unlisted and base.owner == sam
    assert base.name == f"Files of conversation {conversation.pk}"
    assert base.classification == KnowledgeBase._meta.get_field("classification").default
    assert PARKING_PASSAGE in found(sam, conversation, "Who issues parking permits?")
    # the whole flow answers from it and cites it
    answer = stored_answer(run_answer(user=sam, conversation=conversation, question="Who issues parking permits?"))
    assert any(citation["document_id"] == document.pk for citation in answer.citations)


def test_the_file_stays_out_of_other_conversations_and_other_peoples_searches(
    sam: Any, alice: Any, conversation: Any, attach: Any
):
    document = attach(sam, conversation, "parking.md", PARKING).document
    base = conversation.attachments_base
    question = "Who issues parking permits?"
    assert PARKING_PASSAGE in found(sam, conversation, question)

    # another conversation of the same person, also with a profile on every readable base
    other = ConversationFactory.create(owner=sam, profile=conversation.profile)
    assert PARKING_PASSAGE not in found(sam, other, question)
    everything = AssistantProfileFactory.create(usable_by=["Staff"], all_readable_knowledge=True)
    wide = ConversationFactory.create(owner=sam, profile=everything)
    assert base not in pipeline.authorize(user=sam, conversation=wide).knowledge_bases
    assert PARKING_PASSAGE not in found(sam, wide, question)
    # the owner's own knowledge search over every base they read
    own = knowledge_selectors.retrieve(user=sam, query=question, audit_event=False)
    assert document.pk not in {chunk.document_id for chunk in own}
    # a colleague, even naming the base; and an administrator searching everything
    sue = UserFactory.create(username="sue", roles=["Staff"])
    assert not knowledge_selectors.retrieve(user=sue, query=question, knowledge_bases=[base], audit_event=False)
    assert alice.is_superuser or alice.is_staff
    everything_alice = knowledge_selectors.retrieve(user=alice, query=question, audit_event=False)
    assert document.pk not in {chunk.document_id for chunk in everything_alice}


def test_the_base_is_in_no_knowledge_base_list(client: Client, sam: Any, olivia: Any, conversation: Any, attach: Any):
    attach(sam, conversation, "parking.md", PARKING)
    base = conversation.attachments_base

    assert base not in knowledge_selectors.knowledge_bases_for_user(user=sam)
    assert base not in knowledge_selectors.knowledge_bases_for_user(user=sam, permission="change")
    assert base.pk not in {pk for pk, _, _ in knowledge_selectors.knowledge_base_classifications()}
    assert base.name not in knowledge_selectors.knowledge_base_names()
    client.force_login(sam)
    page = client.get(reverse("knowledge:knowledge_base_list"))
    assert page.status_code == 200 and "Handbook" in page.content.decode()
    assert base.name not in page.content.decode()
    assert client.get(reverse("knowledge:knowledge_base_detail", args=[base.pk])).status_code == 404


def test_no_profile_can_be_given_the_base_and_its_owner_follows_citations_to_the_document(
    client: Client, sam: Any, conversation: Any, attach: Any, handbook: Any
):
    document = attach(sam, conversation, "parking.md", PARKING).document
    base = conversation.attachments_base
    client.force_login(UserFactory.create(username="ada", roles=["Administrator"]))
    form = client.get(reverse("admin:assistant_assistantprofile_add")).context["adminform"].form
    choices = form.fields["knowledge_bases"].queryset
    assert handbook in choices and base not in choices

    client.force_login(sam)
    page = client.get(reverse("knowledge:document_detail", args=[document.pk]))
    assert page.status_code == 200 and PARKING_PASSAGE in page.content.decode()
    assert reverse("knowledge:knowledge_base_detail", args=[base.pk]) not in page.content.decode()  # it would 404
    client.force_login(UserFactory.create(username="sue", roles=["Staff"]))
    assert client.get(reverse("knowledge:document_detail", args=[document.pk])).status_code == 404


# ---- the gate
def test_a_personal_value_in_an_attached_file_passes_the_gate_exactly_as_in_a_shared_base(
    sam: Any, conversation: Any, attach: Any, fake_model: Any, fake_provider: Any
):
    from tests.assistant.factories import knowledge_base_with
    from tests.knowledge.factories import ready_document

    fake_provider.answer_with("Noted.")
    question = "Where do questions about parking permits go?"
    attach(sam, conversation, "permits.md", CONTACT)
    attached = stored_answer(run_answer(user=sam, conversation=conversation, question=question))

    shared = knowledge_base_with(name="Facilities", passages=[])
    ready_document(shared, "permits.md", CONTACT)
    profile = AssistantProfileFactory.create(usable_by=["Staff"], knowledge_bases=[shared])
    in_shared = stored_answer(run_answer(user=sam, conversation=ConversationFactory.create(owner=sam, profile=profile),
                                         question=question))  # fmt: skip

    def passages(answer: Any) -> list[dict[str, Any]]:
        rows = [row for row in answer.manifest["parts"] if row["kind"] == "chunk"]
        return [{key: row[key] for key in ("decision", "findings", "pseudonymized", "abstracted", "redacted")}
                for row in rows if row["findings"]]  # fmt: skip

    assert attached.status == in_shared.status
    assert passages(attached) and passages(attached) == passages(in_shared)
    assert attached.manifest["pseudonymized"] == in_shared.manifest["pseudonymized"]
    assert "EMAIL" in attached.manifest["findings"]
    assert all(CONTACT_EMAIL not in request.text for request in fake_provider.requests)


# ---- deleting
def test_deleting_the_conversation_deletes_its_base_documents_chunks_and_files(
    client: Client, sam: Any, conversation: Any, attach: Any, knowledge_storage: Path,
    django_capture_on_commit_callbacks: Any,
):  # fmt: skip
    document = attach(sam, conversation, "parking.md", PARKING).document
    base_id = conversation.attachments_base_id
    stored = Document.objects.get(pk=document.pk).file.name
    assert stored is not None
    assert (knowledge_storage / stored).exists() and Chunk.objects.filter(document_id=document.pk).exists()

    client.force_login(sam)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("assistant:conversation_delete", args=[conversation.pk]))

    assert response.status_code == 302
    assert not KnowledgeBase.objects.filter(pk=base_id).exists()
    assert not Document.objects.filter(pk=document.pk).exists()
    assert not Chunk.objects.filter(knowledge_base_id=base_id).exists()
    assert not (knowledge_storage / stored).exists()
    deleted = AuditEvent.objects.get(action="knowledge.knowledge_base_deleted")
    assert deleted.actor == sam and deleted.details == {"knowledge_base_id": base_id, "documents": 1}
    assert AuditEvent.objects.filter(action="knowledge.document_deleted", object_id=str(document.pk)).exists()


def test_a_purge_by_retention_or_erasure_takes_the_attached_files_too(
    sam: Any, conversation: Any, attach: Any, knowledge_storage: Path, django_capture_on_commit_callbacks: Any
):
    from portal.retention.services import conversations_purge

    document = attach(sam, conversation, "parking.md", PARKING).document
    base_id, stored = conversation.attachments_base_id, Document.objects.get(pk=document.pk).file.name
    assert stored is not None

    with django_capture_on_commit_callbacks(execute=True):
        counts = conversations_purge([conversation.pk])  # no actor: the retention run, a data-subject erasure

    assert counts["attachment_bases"] == 1 and counts["conversations"] == 1
    assert not KnowledgeBase.objects.filter(pk=base_id).exists() and not Chunk.objects.filter(knowledge_base_id=base_id)
    assert not (knowledge_storage / stored).exists()
    assert AuditEvent.objects.get(action="knowledge.knowledge_base_deleted").actor is None


# ---- refused files
def test_a_refused_first_file_names_itself_and_creates_nothing(sam: Any, conversation: Any, attach: Any):
    bases_before, events_before = KnowledgeBase.objects.count(), AuditEvent.objects.count()

    result = attach(sam, conversation, "notes.txt", b"")

    assert result.document is None and result.filename == "notes.txt" and result.error == ERROR_EMPTY
    assert conversation.attachments_base is None and KnowledgeBase.objects.count() == bases_before
    assert not Document.objects.filter(original_filename="notes.txt").exists()
    (event,) = AuditEvent.objects.order_by("pk")[events_before:]
    assert event.action == "assistant.file_rejected" and event.outcome == "failure"
    assert event.details["conversation_id"] == conversation.pk and event.details["error"] == ERROR_EMPTY
    assert "notes.txt" not in str(event.details)  # the name is typed text: only its fingerprint


def test_a_program_renamed_pdf_fails_alone_beside_a_good_file(
    client: Client, sam: Any, conversation: Any, eager_tasks: None, django_capture_on_commit_callbacks: Any
):
    client.force_login(sam)
    url = reverse("assistant:attach", args=[conversation.pk])
    program = SimpleUploadedFile("report.pdf", b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 64)
    good = SimpleUploadedFile("parking.md", PARKING)

    with django_capture_on_commit_callbacks(execute=True):  # the ingestion runs once the upload commits
        response = client.post(url, {"uploads": [program, good]})

    assert response.status_code == 302 and response["Location"] == reverse("assistant:conversation",
                                                                           args=[conversation.pk])  # fmt: skip
    page = client.get(response["Location"]).content.decode()
    assert f"report.pdf: not attached. {ERROR_NOT_PDF}" in page
    conversation.refresh_from_db()
    documents = Document.objects.filter(knowledge_base=conversation.attachments_base)
    assert [(document.original_filename, document.status) for document in documents] == [("parking.md", "ready")]
    assert 'id="attach-files"' in page, page
    assert 'data-status="ready"' in page and "parking.md" in page
    actions = list(AuditEvent.objects.filter(action__startswith="assistant.file_").values_list("action", flat=True))
    assert sorted(actions) == ["assistant.file_attached", "assistant.file_rejected"]
    attached = AuditEvent.objects.get(action="assistant.file_attached")
    assert attached.details["document_id"] == documents[0].pk and attached.details["conversation_id"] == conversation.pk
    assert AuditEvent.objects.filter(action="knowledge.document_uploaded", object_id=str(documents[0].pk)).exists()


def test_a_file_that_fails_in_ingestion_shows_as_failed_with_its_name(client: Client, sam: Any, conversation: Any,
                                                                       attach: Any):  # fmt: skip
    attach(sam, conversation, "scan.txt", b"\x00\x01\x02 binary \x00 content")  # a text name, binary content
    client.force_login(sam)
    page = client.get(reverse("assistant:conversation", args=[conversation.pk])).content.decode()
    (document,) = Document.objects.filter(knowledge_base=conversation.attachments_base)
    assert document.status == DocumentStatus.FAILED
    assert "Failed" in page and f"scan.txt could not be used: {document.error}" in page


# ---- the views
def test_the_attach_view_with_htmx_answers_the_attachments_fragment(client: Client, sam: Any, conversation: Any):
    client.force_login(sam)
    url = reverse("assistant:attach", args=[conversation.pk])

    response = client.post(
        url, {"uploads": [SimpleUploadedFile("parking.md", PARKING)]}, headers={"HX-Request": "true"}
    )

    body = response.content.decode()
    assert response.status_code == 200 and body.lstrip().startswith('<div class="attachments" id="attachments">')
    assert "parking.md" in body and "Processing" in body  # queued: no worker ran in this test
    assert reverse("assistant:attachments", args=[conversation.pk]) in body  # polled until it is final
    poll = client.get(reverse("assistant:attachments", args=[conversation.pk]), headers={"HX-Request": "true"})
    assert poll.status_code == 200 and 'id="attachment-list"' in poll.content.decode()

    empty = client.post(url, {}, headers={"HX-Request": "true"})
    assert empty.status_code == 400 and ERROR_NO_ATTACHMENT in empty.content.decode()


def test_only_the_owner_may_attach(client: Client, sam: Any, oscar: Any, conversation: Any):
    url = reverse("assistant:attach", args=[conversation.pk])
    sue = UserFactory.create(username="sue", roles=["Staff"])
    client.force_login(sue)
    assert client.post(url, {"uploads": [SimpleUploadedFile("parking.md", PARKING)]}).status_code == 404
    assert client.get(reverse("assistant:attachments", args=[conversation.pk])).status_code == 404
    client.force_login(oscar)  # no assistant use at all
    assert client.post(url, {"uploads": [SimpleUploadedFile("parking.md", PARKING)]}).status_code == 403
    conversation.refresh_from_db()
    assert conversation.attachments_base is None and not Document.objects.filter(original_filename="parking.md")
    client.force_login(sam)
    assert client.get(url).status_code == 405
