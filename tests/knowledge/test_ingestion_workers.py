"""Ingestion on a real worker process, on the embedded broker and on Redis; and a worker killed mid-way."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings

from audit.models import AuditEvent
from knowledge import embeddings, selectors, services
from knowledge.chunking import chunk_blocks
from knowledge.extraction import extract
from knowledge.models import Chunk, Document, DocumentStatus
from tests.knowledge.factories import KnowledgeBaseFactory, grant
from tests.workers import BROKERS, Workers

pytestmark = pytest.mark.django_db(transaction=True)

# The sweep in these tests takes a document without a heartbeat for this long as abandoned (default 300 s).
STALE_SECONDS = "5"
# Small embedding batches, so the chunks are stored in many small groups and a kill lands between two of them.
SMALL_BATCHES = {"KNOWLEDGE_EMBED_BATCH": "4"}
FINAL = {DocumentStatus.READY, DocumentStatus.FAILED}
RECOVERY = {
    "JOBS_STALE_AFTER_SECONDS": STALE_SECONDS,
    "JOBS_SWEEP_INTERVAL_SECONDS": "1",
    "JOBS_MAX_REQUEUES": "20",  # a loaded machine may requeue a slow start more than once; that is harmless
}


def _handbook(paragraphs: int) -> bytes:
    lines = ["# Workshop handbook", ""]
    for number in range(paragraphs):
        lines += [
            f"## Procedure {number}",
            "",
            f"Procedure {number} of the bicycle repair workshop: inspect frame {number}, true wheel {number * 7}, "
            f"adjust the brakes to setting {number % 13}, record torque {number * 3} newton metres in the "
            f"logbook, and hand the bicycle back with receipt number {number * 11}. " * 3,
            "",
        ]
    lines += ["## Closing", "", "The workshop closes at six; the zebra-striped tandem is never lent out.", ""]
    return "\n".join(lines).encode()


def _expected_chunks(data: bytes, filename: str) -> int:
    """What a clean ingestion of `data` stores: the same extraction and chunking the task runs."""
    extracted = extract(
        data,
        filename,
        max_bytes=settings.KNOWLEDGE_MAX_UPLOAD_BYTES,
        max_expanded_bytes=settings.KNOWLEDGE_MAX_EXPANDED_BYTES,
    )
    drafts = chunk_blocks(
        extracted.blocks,
        tokenizer=embeddings.tokenizer(),
        target_tokens=settings.KNOWLEDGE_CHUNK_TOKENS,
        overlap_tokens=settings.KNOWLEDGE_CHUNK_OVERLAP,
        across_pages=settings.KNOWLEDGE_CHUNK_ACROSS_PAGES,
    )
    return len(drafts)


def _upload(alice: Any, sam: Any, data: bytes, filename: str) -> Document:
    knowledge_base = KnowledgeBaseFactory.create()
    grant(knowledge_base, "change", user=alice)
    grant(knowledge_base, "view", user=sam)
    result = services.document_upload(actor=alice, knowledge_base=knowledge_base, filename=filename, data=data)
    return result.stored  # committed: on_commit has queued knowledge.document_process on the test's broker


def _status(document: Document) -> str:
    return str(Document.objects.values_list("status", flat=True).get(pk=document.pk))


def _assert_ready_and_searchable(document: Document, sam: Any, expected_chunks: int) -> None:
    document.refresh_from_db()
    assert document.status == DocumentStatus.READY, document.error
    chunks = Chunk.objects.filter(document=document)
    assert chunks.count() == document.chunk_count == expected_chunks
    assert sorted(chunks.values_list("position", flat=True)) == list(range(expected_chunks))  # none twice
    assert set(chunks.values_list("generation", flat=True)) == {document.active_generation}
    found = selectors.retrieve(user=sam, query="zebra-striped tandem", k=3, audit_event=False)
    assert found and found[0].document_id == document.pk
    assert "zebra-striped tandem" in found[0].text


@pytest.mark.parametrize("worker_broker", BROKERS, indirect=True)
def test_an_upload_is_ingested_by_a_real_worker_to_ready_and_searchable(workers: Workers, alice: Any, sam: Any):
    data = _handbook(3)
    document = _upload(alice, sam, data, "handbook.md")
    workers.start()
    workers.wait_for("the document to be processed", lambda: _status(document) in FINAL)
    _assert_ready_and_searchable(document, sam, _expected_chunks(data, "handbook.md"))
    assert AuditEvent.objects.filter(action="knowledge.document_ready", object_id=str(document.pk)).exists()


@pytest.mark.parametrize("worker_broker", BROKERS, indirect=True)
def test_a_worker_killed_mid_ingestion_is_recovered_without_anyone_acting(workers: Workers, alice: Any, sam: Any):
    data = _handbook(160)
    expected = _expected_chunks(data, "big-handbook.md")
    document = _upload(alice, sam, data, "big-handbook.md")
    first = workers.start(beat=False, **SMALL_BATCHES, **RECOVERY)

    def mid_way() -> bool:
        stored = Chunk.objects.filter(document=document).count()
        return _status(document) == DocumentStatus.PROCESSING and stored > 0

    workers.wait_for("the first worker to store some chunks", mid_way)
    first.kill()
    stored_by_the_dead_worker = Chunk.objects.filter(document=document).count()
    assert _status(document) == DocumentStatus.PROCESSING
    assert 0 < stored_by_the_dead_worker < expected  # it really died half-way

    # A new worker with its beat: nobody re-processes anything by hand.
    workers.start(beat=True, **SMALL_BATCHES, **RECOVERY)
    workers.wait_for("the document to be processed again", lambda: _status(document) in FINAL)
    _assert_ready_and_searchable(document, sam, expected)
    requeued = AuditEvent.objects.filter(action="knowledge.document_requeued", object_id=str(document.pk))
    assert requeued.exists()
    assert all(event.actor_username == "system" for event in requeued)
    first_requeue = requeued.first()
    assert first_requeue is not None
    assert set(first_requeue.details) == {"version", "generation", "requeues"}  # counts and ids only
