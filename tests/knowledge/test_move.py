"""Moving a document to another knowledge base moves what search filters on: chunks, postings, statistics."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from knowledge import selectors, services
from knowledge.models import Chunk, Document, KnowledgeBase, LexicalStatistics, Posting, TermStatistic
from tests.knowledge.factories import KnowledgeBaseFactory, grant, ready_document

pytestmark = pytest.mark.django_db

TEXT = b"The Quillfeather salary bands for the Leeds workshop are reviewed every April."
QUERY = "Quillfeather salary bands"


@pytest.fixture
def bases(alice: Any) -> dict[str, KnowledgeBase]:
    """Staff read "Shop floor", governance officers read "Officers only"; alice may change both."""
    shop = KnowledgeBaseFactory.create(name="Shop floor")
    grant(shop, "view", role="Staff")
    officers = KnowledgeBaseFactory.create(name="Officers only")
    grant(officers, "view", role="Governance officer")
    for knowledge_base in (shop, officers):
        grant(knowledge_base, "change", user=alice)
    ready_document(shop, "pay.md", b"Opening hours of the Leeds workshop: nine to five.")  # keeps shop non-empty
    return {"shop": shop, "officers": officers}


@pytest.fixture
def document(bases: dict[str, KnowledgeBase]) -> Document:
    return ready_document(bases["shop"], "salaries.md", TEXT)


def _finds(user: Any, document: Document, mode: str = "hybrid") -> bool:
    found = selectors.retrieve(user=user, query=QUERY, k=10, mode=mode, audit_event=False)
    return document.pk in {item.document_id for item in found}


def _statistics() -> tuple[set[tuple[int, int, int]], set[tuple[int, str, int]]]:
    sizes = set(LexicalStatistics.objects.values_list("knowledge_base_id", "chunk_count", "total_length"))
    frequencies = set(
        TermStatistic.objects.filter(document_frequency__gt=0).values_list(
            "knowledge_base_id", "term", "document_frequency"
        )
    )
    return sizes, frequencies


@pytest.mark.parametrize("mode", ["hybrid", "lexical", "vector"])
def test_after_a_move_only_readers_of_the_new_base_find_the_text(
    alice: Any, sam: Any, olivia: Any, bases: dict[str, KnowledgeBase], document: Document, mode: str
) -> None:
    assert _finds(sam, document, mode) and not _finds(olivia, document, mode)

    services.document_move(actor=alice, document=document, knowledge_base=bases["officers"])

    assert not _finds(sam, document, mode)  # staff read the old base only
    assert _finds(olivia, document, mode)  # officers read the new one


def test_a_move_carries_chunks_postings_and_statistics_with_the_document(
    alice: Any, bases: dict[str, KnowledgeBase], document: Document
) -> None:
    officers = bases["officers"]

    services.document_move(actor=alice, document=document, knowledge_base=officers)

    document.refresh_from_db()
    assert document.knowledge_base_id == officers.pk
    assert set(Chunk.objects.filter(document=document).values_list("knowledge_base_id", flat=True)) == {officers.pk}
    assert set(Posting.objects.filter(document_id=document.pk).values_list("knowledge_base_id", flat=True)) == {
        officers.pk
    }
    # the per-base BM25 statistics are what a rebuild from the chunks gives
    moved = _statistics()
    services.lexical_statistics_rebuild()
    assert moved == _statistics()
    assert LexicalStatistics.objects.get(knowledge_base=officers).chunk_count == document.chunk_count


def test_a_move_is_audited_with_both_bases(alice: Any, bases: dict[str, KnowledgeBase], document: Document) -> None:
    services.document_move(actor=alice, document=document, knowledge_base=bases["officers"])
    event = AuditEvent.objects.get(action="knowledge.document_moved")
    assert event.actor_username == "alice" and event.object_id == str(document.pk)
    assert event.details["from_knowledge_base_id"] == bases["shop"].pk
    assert event.details["to_knowledge_base_id"] == bases["officers"].pk
    assert event.details["chunks"] == document.chunk_count and event.details["postings"] > 0


def test_moving_needs_change_access_to_both_bases(
    sam: Any, bases: dict[str, KnowledgeBase], document: Document
) -> None:
    grant(bases["shop"], "change", user=sam)
    with pytest.raises(PermissionDenied):
        services.document_move(actor=sam, document=document, knowledge_base=bases["officers"])
    document.refresh_from_db()
    assert document.knowledge_base_id == bases["shop"].pk
    assert not AuditEvent.objects.filter(action="knowledge.document_moved").exists()


def test_a_move_onto_a_file_name_the_other_base_has_is_refused(
    alice: Any, bases: dict[str, KnowledgeBase], document: Document
) -> None:
    ready_document(bases["officers"], "salaries.md", b"Another text under the same file name.")
    with pytest.raises(ValidationError, match=services.ERROR_MOVE_NAME_TAKEN):
        services.document_move(actor=alice, document=document, knowledge_base=bases["officers"])
    with pytest.raises(ValidationError, match=services.ERROR_MOVE_SAME_BASE):
        services.document_move(actor=alice, document=document, knowledge_base=bases["shop"])


def test_chunks_an_ingestion_stored_before_the_move_activate_in_the_new_base(
    alice: Any, sam: Any, olivia: Any, bases: dict[str, KnowledgeBase], document: Document
) -> None:
    services.document_reprocess(actor=alice, document=document)  # generation 2, queued
    document.refresh_from_db()
    services.document_move(actor=alice, document=document, knowledge_base=bases["officers"])
    # the task had loaded the document before the move: it stores generation 2 under the old base's id
    old = Chunk.objects.filter(document=document).first()
    assert old is not None
    Chunk.objects.create(
        document=document, knowledge_base_id=bases["shop"].pk, generation=document.generation, position=0,
        text=old.text, embedding=old.embedding, lexical_length=old.lexical_length, token_count=old.token_count,
    )  # fmt: skip

    services.document_activate(document_id=document.pk, generation=document.generation)

    assert set(Chunk.objects.filter(document=document).values_list("knowledge_base_id", flat=True)) == {
        bases["officers"].pk
    }
    assert set(Posting.objects.filter(document_id=document.pk).values_list("knowledge_base_id", flat=True)) == {
        bases["officers"].pk
    }
    assert not _finds(sam, document) and _finds(olivia, document)


# ---- the document page ----------------------------------------------------------------------------
def _client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_editor_of_both_bases_moves_the_document_from_its_page(
    alice: Any, bases: dict[str, KnowledgeBase], document: Document
) -> None:
    client = _client_for(alice)
    page = client.get(reverse("knowledge:document_detail", args=[document.pk])).content.decode()
    assert "Move to another knowledge base" in page and "Officers only" in page

    response = client.post(
        reverse("knowledge:document_move", args=[document.pk]), {"knowledge_base": bases["officers"].pk}
    )

    assert response.status_code == 302
    document.refresh_from_db()
    assert document.knowledge_base_id == bases["officers"].pk


def test_the_move_is_offered_only_towards_bases_the_user_may_change(
    sam: Any, bases: dict[str, KnowledgeBase], document: Document
) -> None:
    grant(bases["shop"], "change", user=sam)
    client = _client_for(sam)
    page = client.get(reverse("knowledge:document_detail", args=[document.pk])).content.decode()
    assert "Move to another knowledge base" not in page

    response = client.post(
        reverse("knowledge:document_move", args=[document.pk]), {"knowledge_base": bases["officers"].pk}
    )

    assert response.status_code == 400
    document.refresh_from_db()
    assert document.knowledge_base_id == bases["shop"].pk


@pytest.mark.parametrize(("person", "status"), [("sam", 403), ("oscar", 404)])
def test_readers_get_a_403_and_outsiders_a_404(
    person: str, status: int, request: pytest.FixtureRequest, bases: dict[str, KnowledgeBase], document: Document
) -> None:
    response = _client_for(request.getfixturevalue(person)).post(
        reverse("knowledge:document_move", args=[document.pk]), {"knowledge_base": bases["officers"].pk}
    )
    assert response.status_code == status
    document.refresh_from_db()
    assert document.knowledge_base_id == bases["shop"].pk
