from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.db import connection
from django.urls import reverse

from audit.models import AuditEvent
from audit.privacy import text_hmac
from knowledge import embeddings, extraction, selectors, services
from knowledge.chunking import ChunkDraft, chunk_blocks
from knowledge.extraction import extract
from knowledge.models import (
    Chunk,
    Document,
    DocumentStatus,
    LexicalStatistics,
    Posting,
    TermStatistic,
    pages_label,
)
from tests.knowledge.factories import KnowledgeBaseFactory, grant, pdf_bytes, ready_document

pytestmark = pytest.mark.django_db

HANDBOOK = (
    b"# Handbook\n\n## Leave\n\nEmployees have 24 days of annual leave.\n\n"
    b"## Hotels\n\nHotels are paid up to 150 EUR per night.\n"
)


def test_a_markdown_upload_becomes_searchable_chunks() -> None:
    knowledge_base = KnowledgeBaseFactory.create()
    document = ready_document(knowledge_base, "handbook.md", HANDBOOK)
    assert document.status == DocumentStatus.READY
    chunks = list(Chunk.objects.filter(document=document).order_by("position"))
    assert [chunk.heading_path for chunk in chunks] == ["Handbook › Leave", "Handbook › Hotels"]
    assert all(chunk.generation == document.active_generation for chunk in chunks)
    assert all(chunk.token_count > 0 and chunk.lexical_length > 0 for chunk in chunks)
    vector = np.asarray(chunks[0].embedding)
    assert vector.shape == (embeddings.EMBEDDING_DIMENSION,)
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-3
    assert document.file.read() == HANDBOOK


def test_pdf_chunks_keep_their_page_numbers(settings: Any) -> None:
    knowledge_base = KnowledgeBaseFactory.create()
    two_pages = pdf_bytes([["Page one about trains."], ["Page two about hotels."]])
    # by default a chunk runs on over a page break and records the pages it covers
    document = ready_document(knowledge_base, "policy.pdf", two_pages)
    assert document.page_count == 2
    rows = list(Chunk.objects.filter(document=document).values_list("text", "page_number", "page_end"))
    assert rows == [("Page one about trains.\nPage two about hotels.", 1, 2)]
    settings.KNOWLEDGE_CHUNK_ACROSS_PAGES = False
    services.document_reprocess(actor=None, document=document)
    services.document_process(document_id=document.pk, generation=document.generation + 1)
    pages = {text: (first, last) for text, first, last in
             Chunk.objects.filter(document=document).values_list("text", "page_number", "page_end")}  # fmt: skip
    assert pages == {"Page one about trains.": (1, 1), "Page two about hotels.": (2, 2)}


def test_a_citation_names_the_pages_its_chunk_covers() -> None:
    assert pages_label(7, 8) == "pages 7–8"
    assert pages_label(7, 7) == pages_label(7, None) == "page 7"
    assert pages_label(None, None) == ""


def test_long_text_is_chunked_by_model_tokens_with_overlap(settings: Any) -> None:
    settings.KNOWLEDGE_CHUNK_TOKENS = 40
    settings.KNOWLEDGE_CHUNK_OVERLAP = 8
    words = " ".join(f"word{i}" for i in range(300))
    document = ready_document(KnowledgeBaseFactory.create(), "long.txt", words.encode())
    chunks = list(Chunk.objects.filter(document=document).order_by("position"))
    assert len(chunks) > 3
    assert all(chunk.token_count <= 40 for chunk in chunks)
    first_words, second_words = chunks[0].text.split(), chunks[1].text.split()
    assert second_words[0] in first_words  # the second chunk starts inside the first (overlap)


def test_the_same_content_again_is_recognised_by_its_hash() -> None:
    knowledge_base = KnowledgeBaseFactory.create()
    document = ready_document(knowledge_base, "handbook.md", HANDBOOK)
    result = services.document_upload(actor=None, knowledge_base=knowledge_base, filename="copy.md", data=HANDBOOK)
    assert result.outcome == "duplicate"
    assert result.document == document
    assert Document.objects.filter(knowledge_base=knowledge_base).count() == 1


def test_a_new_version_replaces_the_chunks_of_the_old_one() -> None:
    knowledge_base = KnowledgeBaseFactory.create()
    document = ready_document(knowledge_base, "handbook.md", HANDBOOK)
    old_ids = set(Chunk.objects.filter(document=document).values_list("pk", flat=True))
    newer = HANDBOOK.replace(b"24 days", b"26 days")
    result = services.document_upload(actor=None, knowledge_base=knowledge_base, filename="handbook.md", data=newer)
    assert result.outcome == "new_version"
    assert result.stored.pk == document.pk and result.stored.version == 2
    services.document_process(document_id=document.pk, generation=result.stored.generation)
    texts = list(Chunk.objects.filter(document=document).values_list("text", flat=True))
    assert any("26 days" in text for text in texts) and not any("24 days" in text for text in texts)
    assert not old_ids & set(Chunk.objects.filter(document=document).values_list("pk", flat=True))


def test_searches_see_the_old_version_until_the_new_one_is_complete(alice: Any) -> None:
    knowledge_base = KnowledgeBaseFactory.create()
    grant(knowledge_base, "view", role="Administrator")
    document = ready_document(knowledge_base, "handbook.md", HANDBOOK)
    newer = HANDBOOK.replace(b"24 days", b"26 days")
    result = services.document_upload(actor=None, knowledge_base=knowledge_base, filename="handbook.md", data=newer)
    # The new generation's chunks are written but not yet switched on.
    services.chunks_store(
        document=result.stored,
        generation=result.stored.generation,
        drafts=[ChunkDraft("Employees have 26 days of annual leave.", "Handbook › Leave", None, 9)],
    )
    found = selectors.retrieve(user=alice, query="annual leave days", audit_event=False)
    assert found and all(item.document_id == document.pk for item in found)
    assert all("26 days" not in item.text for item in found)


def test_a_processing_document_shows_how_many_chunks_are_done(
    settings: Any, monkeypatch: pytest.MonkeyPatch, client: Any, alice: Any
) -> None:
    settings.KNOWLEDGE_EMBED_BATCH = 1
    monkeypatch.setattr(services, "STORE_GROUP_BATCHES", 1)  # one chunk per stored group
    knowledge_base = KnowledgeBaseFactory.create()
    grant(knowledge_base, "view", role="Administrator")
    result = services.document_upload(actor=None, knowledge_base=knowledge_base, filename="handbook.md", data=HANDBOOK)
    seen: list[tuple[str, int, int, int | None]] = []
    pages: list[str] = []
    real_embed = embeddings.embed_texts

    def watch(texts: list[str], **kwargs: Any) -> np.ndarray:
        row = Document.objects.get(pk=result.stored.pk)
        seen.append((row.status, row.chunks_embedded, row.chunks_planned, row.progress_percent))
        client.force_login(alice)
        pages.append(client.get(reverse("knowledge:document_status", args=[row.pk])).content.decode())
        return real_embed(texts, **kwargs)

    monkeypatch.setattr(embeddings, "embed_texts", watch)
    assert services.document_process(document_id=result.stored.pk, generation=result.stored.generation) == "ready"
    # while it ran: two chunks planned, none then one stored before each of the two embedding calls
    assert seen == [("processing", 0, 2, 0), ("processing", 1, 2, 50)]
    assert "1 of 2 chunks" in pages[1] and "<progress" in pages[1]
    done = Document.objects.get(pk=result.stored.pk)
    assert (done.chunks_embedded, done.chunks_planned, done.progress_percent) == (2, 2, None)  # ready: no bar


def test_a_retry_after_a_crash_leaves_no_duplicate_chunks(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.KNOWLEDGE_EMBED_BATCH = 1
    monkeypatch.setattr(services, "STORE_GROUP_BATCHES", 1)  # one chunk per stored group
    knowledge_base = KnowledgeBaseFactory.create()
    result = services.document_upload(actor=None, knowledge_base=knowledge_base, filename="handbook.md", data=HANDBOOK)
    real_embed = embeddings.embed_texts
    calls = {"n": 0}

    def crash_on_second_batch(texts: list[str], **kwargs: Any) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 2:
            raise SystemExit("worker killed")
        return real_embed(texts, **kwargs)

    monkeypatch.setattr(embeddings, "embed_texts", crash_on_second_batch)
    with pytest.raises(SystemExit, match="^worker killed$"):  # our simulated crash, not another exit
        services.document_process(document_id=result.stored.pk, generation=result.stored.generation)
    assert Chunk.objects.filter(document=result.document).count() == 1  # one batch stored
    result.stored.refresh_from_db()
    assert result.stored.active_generation == 0  # and not searchable
    monkeypatch.setattr(embeddings, "embed_texts", real_embed)
    assert services.document_process(document_id=result.stored.pk, generation=result.stored.generation) == "ready"
    # Running the same task once more (a redelivered message) changes nothing.
    assert services.document_process(document_id=result.stored.pk, generation=result.stored.generation) == "skipped"
    positions = list(Chunk.objects.filter(document=result.document).values_list("position", flat=True))
    assert sorted(positions) == [0, 1]
    assert (
        Posting.objects.filter(chunk__document=result.document).count()
        == Posting.objects.filter(chunk__document=result.document).values("term", "chunk").distinct().count()
    )


def test_bad_files_fail_with_a_message_and_leave_the_others_alone(settings: Any) -> None:
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 10_000
    knowledge_base = KnowledgeBaseFactory.create()
    good = ready_document(knowledge_base, "good.md", HANDBOOK)
    broken = ready_document(knowledge_base, "broken.pdf", b"%PDF-1.4 nonsense")
    binary = ready_document(knowledge_base, "binary.txt", b"\x00\x01\x02" * 100)
    too_big = services.document_upload(
        actor=None, knowledge_base=knowledge_base, filename="big.txt", data=None, size=20_000
    )
    assert good.status == DocumentStatus.READY
    for failed in (broken, binary):
        assert failed.status == DocumentStatus.FAILED and failed.error
        assert not Chunk.objects.filter(document=failed).exists()
    assert AuditEvent.objects.filter(action="knowledge.document_failed", object_id=str(broken.pk)).exists()
    # refused at upload: no document at all, the refusal audited against the knowledge base
    assert too_big.document is None and too_big.outcome == "rejected" and "over the limit" in too_big.error
    assert not Document.objects.filter(original_filename="big.txt").exists()
    rejected = AuditEvent.objects.get(action="knowledge.document_rejected")
    assert rejected.object_id == str(knowledge_base.pk) and rejected.details["extension"] == "txt"
    assert rejected.details["filename_hmac"] == text_hmac("big.txt") and "big" not in str(rejected.details)


@pytest.mark.parametrize(
    ("filename", "data", "error"),
    [
        ("empty.md", b"", extraction.ERROR_EMPTY),
        ("program.pdf", b"MZ\x90\x00 this is a renamed executable", extraction.ERROR_NOT_PDF),
        ("letter.docx", b"%PDF-1.4 not a zip", extraction.ERROR_NOT_DOCX),
        ("tool.exe", b"MZ\x90\x00", extraction.ERROR_UNSUPPORTED.format(extension=".exe")),
    ],
)
def test_files_that_cannot_be_documents_are_refused_at_upload_with_a_reason(filename: str, data: bytes, error: str):
    knowledge_base = KnowledgeBaseFactory.create()

    result = services.document_upload(actor=None, knowledge_base=knowledge_base, filename=filename, data=data)

    assert (result.document, result.outcome, result.filename, result.error) == (None, "rejected", filename, error)
    assert not Document.objects.exists()


def test_bm25_statistics_follow_versions_and_deletes() -> None:
    knowledge_base = KnowledgeBaseFactory.create()
    other = KnowledgeBaseFactory.create()
    document = ready_document(knowledge_base, "handbook.md", HANDBOOK)
    ready_document(other, "hotels.md", b"# Hotels\n\nHotel rooms are booked by the travel desk.")
    stats = LexicalStatistics.objects.get(knowledge_base=knowledge_base)
    assert stats.chunk_count == 2
    assert stats.total_length == sum(
        Chunk.objects.filter(knowledge_base=knowledge_base).values_list("lexical_length", flat=True)
    )
    assert TermStatistic.objects.get(knowledge_base=knowledge_base, term="hotel").document_frequency == 1
    assert TermStatistic.objects.get(knowledge_base=other, term="hotel").document_frequency == 1
    services.document_delete(actor=None, document=document)
    stats.refresh_from_db()
    assert (stats.chunk_count, stats.total_length) == (0, 0)
    assert TermStatistic.objects.get(knowledge_base=knowledge_base, term="hotel").document_frequency == 0
    # the other knowledge base's statistics are its own
    assert LexicalStatistics.objects.get(knowledge_base=other).chunk_count == 1
    assert TermStatistic.objects.get(knowledge_base=other, term="hotel").document_frequency == 1


def test_the_task_marks_a_document_failed_after_an_unexpected_error(
    monkeypatch: pytest.MonkeyPatch, eager_tasks: None
) -> None:
    from knowledge.tasks import document_process_task

    knowledge_base = KnowledgeBaseFactory.create()
    result = services.document_upload(actor=None, knowledge_base=knowledge_base, filename="h.md", data=HANDBOOK)

    def explode(**kwargs: Any) -> int:
        raise RuntimeError("disk full")

    monkeypatch.setattr(services, "chunks_store", explode)
    assert document_process_task.delay(result.stored.pk, result.stored.generation).get() == "failed"
    result.stored.refresh_from_db()
    assert result.stored.status == DocumentStatus.FAILED
    assert "RuntimeError" in result.stored.error


def test_postings_hold_stemmed_terms() -> None:
    document = ready_document(KnowledgeBaseFactory.create(), "h.md", HANDBOOK)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT term FROM knowledge_posting p JOIN knowledge_chunk c ON c.id = p.chunk_id WHERE c.document_id = %s",
            [document.pk],
        )
        terms = {row[0] for row in cursor.fetchall()}
    assert {"employe", "hotel", "night"} <= terms and "the" not in terms


def test_postings_exist_only_for_the_active_version_and_carry_what_bm25_filters_on() -> None:
    knowledge_base = KnowledgeBaseFactory.create()
    document = ready_document(knowledge_base, "h.md", HANDBOOK)
    first = set(Chunk.objects.filter(document=document).values_list("pk", flat=True))
    copies = set(Posting.objects.values_list("chunk_id", "knowledge_base_id", "document_id", "chunk_length"))
    lengths = dict(Chunk.objects.values_list("pk", "lexical_length"))
    assert {chunk_id for chunk_id, *_ in copies} == first
    assert all(kb == knowledge_base.pk and doc == document.pk and n == lengths[c] for c, kb, doc, n in copies)
    # chunk length = the sum of its postings' tf, computed before the chunk was written
    for chunk_id in first:
        assert lengths[chunk_id] == sum(Posting.objects.filter(chunk_id=chunk_id).values_list("tf", flat=True)) > 0

    # A new version being processed: its chunks are stored, but its postings wait for the switch.
    services.document_reprocess(actor=None, document=document)
    document.refresh_from_db()
    services.chunks_store(
        document=document,
        generation=document.generation,
        drafts=chunk_blocks(
            extract(
                b"# Travel\n\nTaxis are refunded after midnight.", "h.md", max_bytes=10**6, max_expanded_bytes=10**6
            ).blocks,
            tokenizer=embeddings.tokenizer(),
        ),
    )
    assert set(Posting.objects.values_list("chunk_id", flat=True)) == first
    assert not Posting.objects.filter(term="taxi").exists()
    services.document_activate(document_id=document.pk, generation=document.generation)
    second = set(Chunk.objects.filter(document=document).values_list("pk", flat=True))
    assert second.isdisjoint(first)
    assert set(Posting.objects.values_list("chunk_id", flat=True)) == second
    assert Posting.objects.filter(term="taxi").exists() and not Posting.objects.filter(term="hotel").exists()


def test_a_pdf_over_the_page_limit_fails_before_its_pages_are_read(settings: Any) -> None:
    settings.KNOWLEDGE_MAX_PDF_PAGES = 3
    knowledge_base = KnowledgeBaseFactory.create()

    within = ready_document(knowledge_base, "short.pdf", pdf_bytes([[f"Page {n} text."] for n in range(3)]))
    over = ready_document(knowledge_base, "long.pdf", pdf_bytes([[f"Page {n} text."] for n in range(4)]))

    assert within.status == DocumentStatus.READY
    assert over.status == DocumentStatus.FAILED
    assert over.error == extraction.ERROR_PDF_TOO_MANY_PAGES.format(pages=4, limit=3)
