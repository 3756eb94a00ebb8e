from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from audit.privacy import text_hmac
from knowledge.models import Document, DocumentStatus, KnowledgeBase
from tests.knowledge.factories import KnowledgeBaseFactory, grant, pdf_bytes, ready_document
from tests.responses import streamed

pytestmark = pytest.mark.django_db

TEXT = b"# Bikes\n\nThe workshop repairs cargo bicycles on Mondays.\n"


@pytest.fixture
def kb(alice: Any, olivia: Any, sam: Any) -> KnowledgeBase:
    """Staff view, the governance officer changes, the administrator manages."""
    knowledge_base = KnowledgeBaseFactory.create(name="Handbook")
    grant(knowledge_base, "view", role="Staff")
    grant(knowledge_base, "change", role="Governance officer")
    grant(knowledge_base, "manage", role="Administrator")
    return knowledge_base


@pytest.fixture
def document(kb: KnowledgeBase) -> Document:
    return ready_document(kb, "bikes.md", TEXT)


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_list_shows_only_visible_knowledge_bases(kb: KnowledgeBase, sam: Any, oscar: Any) -> None:
    KnowledgeBaseFactory.create(name="Secret base")
    page = client_for(sam).get(reverse("knowledge:knowledge_base_list")).content.decode()
    assert "Handbook" in page and "Secret base" not in page
    assert "Handbook" not in client_for(oscar).get(reverse("knowledge:knowledge_base_list")).content.decode()


def test_detail_is_404_for_outsiders(kb: KnowledgeBase, document: Document, sam: Any, oscar: Any) -> None:
    url = reverse("knowledge:knowledge_base_detail", args=[kb.pk])
    response = client_for(sam).get(url)
    assert response.status_code == 200 and "bikes" in response.content.decode()
    assert "Upload documents" not in response.content.decode()  # read-only
    assert client_for(oscar).get(url).status_code == 404


def test_creating_a_knowledge_base_needs_the_role_permission(alice: Any, sam: Any) -> None:
    url = reverse("knowledge:knowledge_base_create")
    response = client_for(alice).post(url, {"name": "Sales", "description": "", "classification": "confidential"})
    created = KnowledgeBase.objects.get(name="Sales")
    assert response.status_code == 302
    assert alice.has_perm("knowledge.manage_knowledgebase", created)
    assert client_for(sam).post(url, {"name": "Other", "classification": "internal"}).status_code == 403
    assert client_for(alice).post(url, {"name": "", "classification": "internal"}).status_code == 400


@pytest.mark.usefixtures("eager_tasks")
def test_upload_of_several_files_processes_each_on_its_own(
    kb: KnowledgeBase, olivia: Any, django_capture_on_commit_callbacks: Any
) -> None:
    files = [
        SimpleUploadedFile("good.md", TEXT, content_type="text/markdown"),
        SimpleUploadedFile("broken.pdf", b"%PDF-1.4 broken", content_type="application/pdf"),
        SimpleUploadedFile("policy.pdf", pdf_bytes([["Hotel limit is 150 EUR."]]), content_type="application/pdf"),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(olivia).post(
            reverse("knowledge:document_upload", args=[kb.pk]), {"uploads": files}, HTTP_HX_REQUEST="true"
        )
    assert response.status_code == 200
    statuses = dict(Document.objects.filter(knowledge_base=kb).values_list("original_filename", "status"))
    assert statuses == {
        "good.md": DocumentStatus.READY,
        "broken.pdf": DocumentStatus.FAILED,
        "policy.pdf": DocumentStatus.READY,
    }
    assert response.content.decode().count('class="upload-item"') == 3
    assert AuditEvent.objects.filter(action="knowledge.document_uploaded").count() == 3


@pytest.mark.usefixtures("eager_tasks")
def test_an_empty_file_in_a_batch_is_refused_by_name_and_the_others_go_in(
    kb: KnowledgeBase, olivia: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from knowledge.extraction import ERROR_EMPTY

    files = [
        SimpleUploadedFile("good.md", TEXT),
        SimpleUploadedFile("blank.md", b""),
        SimpleUploadedFile("b.md", TEXT + b"more"),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(olivia).post(
            reverse("knowledge:document_upload", args=[kb.pk]), {"uploads": files}, HTTP_HX_REQUEST="true"
        )

    html = response.content.decode()
    assert response.status_code == 200
    assert sorted(Document.objects.filter(knowledge_base=kb).values_list("original_filename", flat=True)) == [
        "b.md", "good.md"
    ]  # fmt: skip
    refused = html.split('data-outcome="rejected"')[1].split("</li>")[0]
    assert "blank.md" in refused and ERROR_EMPTY in refused


def test_upload_is_403_read_only_and_404_outsider(kb: KnowledgeBase, sam: Any, oscar: Any) -> None:
    url = reverse("knowledge:document_upload", args=[kb.pk])
    assert client_for(sam).post(url, {"uploads": [SimpleUploadedFile("a.md", TEXT)]}).status_code == 403
    assert client_for(oscar).post(url, {"uploads": [SimpleUploadedFile("a.md", TEXT)]}).status_code == 404
    assert not Document.objects.exists()


def test_upload_without_files_is_400(kb: KnowledgeBase, olivia: Any) -> None:
    response = client_for(olivia).post(reverse("knowledge:document_upload", args=[kb.pk]), {})
    assert response.status_code == 400 and "Choose at least one file" in response.content.decode()


def test_status_fragment_polls_until_final(kb: KnowledgeBase, olivia: Any, oscar: Any) -> None:
    from knowledge import services

    queued = services.document_upload(actor=None, knowledge_base=kb, filename="q.md", data=TEXT).stored
    body = client_for(olivia).get(reverse("knowledge:document_status", args=[queued.pk])).content.decode()
    assert "Queued" in body and 'hx-trigger="every 1s"' in body
    assert client_for(oscar).get(reverse("knowledge:document_status", args=[queued.pk])).status_code == 404


def test_document_page_is_audited_and_hidden_from_outsiders(document: Document, sam: Any, oscar: Any) -> None:
    url = reverse("knowledge:document_detail", args=[document.pk])
    response = client_for(sam).get(url)
    assert response.status_code == 200 and "cargo bicycles" in response.content.decode()
    assert AuditEvent.objects.filter(
        action="knowledge.document_viewed", object_id=str(document.pk), actor_id=sam.pk
    ).exists()
    assert client_for(oscar).get(url).status_code == 404


def test_pdf_pages_have_anchors_for_citations(kb: KnowledgeBase, sam: Any) -> None:
    pdf = ready_document(kb, "p.pdf", pdf_bytes([["one"], ["two"]]))
    body = client_for(sam).get(reverse("knowledge:document_detail", args=[pdf.pk])).content.decode()
    assert 'id="page-1"' in body and 'id="page-2"' in body


def test_document_page_words_chunk_pages_as_search_does(kb: KnowledgeBase, sam: Any) -> None:
    # Short pages: the chunk runs on over the page break, so it covers pages 1 and 2.
    pdf = ready_document(kb, "p.pdf", pdf_bytes([["Cargo bicycles are allowed."], ["Lockers are on floor two."]]))
    chunk = pdf.chunks.get()
    assert (chunk.page_number, chunk.page_end) == (1, 2)
    body = client_for(sam).get(reverse("knowledge:document_detail", args=[pdf.pk])).content.decode()
    assert "· pages 1–2" in body and "· page 1–2" not in body


def test_download_returns_the_original_and_is_audited(document: Document, sam: Any, oscar: Any) -> None:
    url = reverse("knowledge:document_download", args=[document.pk])
    response = client_for(sam).get(url)
    assert response.status_code == 200 and streamed(response) == TEXT
    assert AuditEvent.objects.filter(action="knowledge.document_downloaded", object_id=str(document.pk)).exists()
    assert client_for(oscar).get(url).status_code == 404


def test_restricted_documents_are_404_for_other_roles(kb: KnowledgeBase, sam: Any, olivia: Any) -> None:
    restricted = ready_document(kb, "pay.md", b"Salaries.", roles=["Administrator"])
    for name in ("document_detail", "document_download"):
        assert client_for(sam).get(reverse(f"knowledge:{name}", args=[restricted.pk])).status_code == 404
    # The officer edits this base, so sees every document in it.
    assert client_for(olivia).get(reverse("knowledge:document_detail", args=[restricted.pk])).status_code == 200
    listing = client_for(sam).get(reverse("knowledge:knowledge_base_detail", args=[kb.pk])).content.decode()
    assert "pay.md" not in listing


def test_delete_and_reprocess_need_change_permission(document: Document, olivia: Any, sam: Any, oscar: Any) -> None:
    for name in ("document_reprocess", "document_delete"):
        url = reverse(f"knowledge:{name}", args=[document.pk])
        assert client_for(sam).post(url).status_code == 403
        assert client_for(oscar).post(url).status_code == 404
    assert client_for(olivia).post(reverse("knowledge:document_reprocess", args=[document.pk])).status_code == 302
    document.refresh_from_db()
    assert document.status == DocumentStatus.QUEUED
    assert client_for(olivia).post(reverse("knowledge:document_delete", args=[document.pk])).status_code == 302
    assert not Document.objects.filter(pk=document.pk).exists()
    assert AuditEvent.objects.filter(action="knowledge.document_deleted").exists()


def test_granting_access_is_for_managers_only(
    kb: KnowledgeBase, alice: Any, olivia: Any, oscar: Any, audrey: Any
) -> None:
    url = reverse("knowledge:knowledge_base_grant", args=[kb.pk])
    data = {"level": "view", "group": "", "username": "audrey"}
    assert client_for(olivia).post(url, data).status_code == 403
    assert client_for(oscar).post(url, data).status_code == 404
    assert client_for(alice).post(url, data).status_code == 302
    assert audrey.has_perm("knowledge.view_knowledgebase", kb)
    assert AuditEvent.objects.filter(action="knowledge.access_granted", object_id=str(kb.pk)).exists()
    assert client_for(alice).post(url, {"level": "view", "group": "", "username": "nobody"}).status_code == 400


def test_search_page_shows_highlighted_results_and_audits(document: Document, sam: Any, oscar: Any) -> None:
    url = reverse("knowledge:search")
    response = client_for(sam).get(url, {"q": "cargo bicycles"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and "<mark>" in body and "<html" not in body  # the fragment only
    assert f"/knowledge/documents/{document.pk}/" in body
    event = AuditEvent.objects.filter(action="knowledge.searched").latest("seq")
    assert event.details["query_hmac"] == text_hmac("cargo bicycles") and event.details["chunk_ids"]
    assert "cargo" not in str(event.details)
    outsider = client_for(oscar).get(url, {"q": "cargo bicycles"}).content.decode()
    assert f"/knowledge/documents/{document.pk}/" not in outsider


def test_search_rejects_a_knowledge_base_the_user_cannot_see(document: Document, oscar: Any) -> None:
    response = client_for(oscar).get(reverse("knowledge:search"), {"q": "bikes", "kb": str(document.knowledge_base_id)})
    assert response.status_code == 400


def test_the_page_says_who_reads_it_and_which_assistant_profiles_search_it(
    kb: KnowledgeBase, sam: Any, alice: Any
) -> None:
    from tests.assistant.factories import AssistantProfileFactory

    page = client_for(sam).get(reverse("knowledge:knowledge_base_detail", args=[kb.pk])).content.decode()
    assert "Readable by</strong>" in page and "Staff" in page.split("Readable by</strong>")[1].split("</p>")[0]
    assert "No assistant profile searches this knowledge base yet" in page  # uploads would go unused

    helper = AssistantProfileFactory.create(name="Handbook helper", usable_by=["Staff"])
    helper.knowledge_bases.add(kb)
    board = AssistantProfileFactory.create(name="Board helper", usable_by=["Administrator"])
    board.knowledge_bases.add(kb)
    page = client_for(sam).get(reverse("knowledge:knowledge_base_detail", args=[kb.pk])).content.decode()
    assert '<span class="tag">Handbook helper</span>' in page
    assert "Board helper" not in page and "1 you do not use" in page  # another role's profile: counted only
    page = client_for(alice).get(reverse("knowledge:knowledge_base_detail", args=[kb.pk])).content.decode()
    assert '<span class="tag">Board helper</span>' in page and "you do not use" not in page
