"""Helpers for the evaluation and benchmark commands: bulk loading of text corpora and IR metrics."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.db import connection, transaction

from knowledge import embeddings, services
from knowledge.chunking import ChunkDraft, chunk_blocks
from knowledge.extraction import Block
from knowledge.models import Chunk, Document, DocumentStatus, KnowledgeBase
from knowledge.search import Acl


@dataclass(frozen=True)
class CorpusDocument:
    key: str
    title: str
    text: str


def knowledge_base_drop(name: str) -> None:
    """Remove a knowledge base with its chunks (its BM25 statistics, kept per base, go with it)."""
    KnowledgeBase.objects.filter(name=name).delete()


def knowledge_base_fresh(name: str, description: str = "") -> KnowledgeBase:
    """An empty knowledge base (an older one with that name is removed first)."""
    knowledge_base_drop(name)
    return services.knowledge_base_create(actor=None, name=name, description=description)


def corpus_chunk(docs: Sequence[CorpusDocument], *, target_tokens: int, overlap_tokens: int) -> list[list[ChunkDraft]]:
    tokenizer = embeddings.tokenizer()
    return [
        chunk_blocks(
            [Block(paragraph) for paragraph in doc.text.split("\n\n") if paragraph.strip()] or [Block(doc.title)],
            tokenizer=tokenizer,
            target_tokens=target_tokens,
            overlap_tokens=overlap_tokens,
        )
        for doc in docs
    ]


def corpus_load(
    knowledge_base: KnowledgeBase,
    docs: Sequence[CorpusDocument],
    drafts: Sequence[Sequence[ChunkDraft]],
    *,
    vectors: np.ndarray | None = None,
    batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
) -> dict[int, str]:
    """Store documents (without files) and their chunks, then activate them all; returns document id -> key."""
    with transaction.atomic():
        created = Document.objects.bulk_create(
            [
                Document(
                    knowledge_base=knowledge_base,
                    title=doc.title[:300] or doc.key,
                    original_filename=doc.key[:255],
                    sha256="",
                    status=DocumentStatus.PROCESSING,
                    generation=1,
                )
                for doc in docs
            ]
        )
    keys = {document.pk: doc.key for document, doc in zip(created, docs, strict=True)}
    flat = [
        (document, position, draft)
        for document, doc_drafts in zip(created, drafts, strict=True)
        for position, draft in enumerate(doc_drafts)
    ]
    offset = 0
    for start in range(0, len(flat), batch_size):
        batch = flat[start : start + batch_size]
        if vectors is None:
            batch_vectors = embeddings.embed_texts(
                [
                    services.embedding_input(document.title, draft.heading_path, draft.text)
                    for document, _, draft in batch
                ]
            )
        else:
            batch_vectors = vectors[offset : offset + len(batch)]
        offset += len(batch)
        with transaction.atomic():
            Chunk.objects.bulk_create(
                [
                    Chunk(
                        document=document,
                        knowledge_base=knowledge_base,
                        generation=1,
                        position=position,
                        text=draft.text,
                        heading_path=draft.heading_path[:500],
                        page_number=draft.page_number,
                        token_count=draft.token_count,
                        embedding=vector,
                    )
                    for (document, position, draft), vector in zip(batch, batch_vectors, strict=True)
                ]
            )
        if progress is not None:
            progress(len(batch))
    with transaction.atomic(), connection.cursor() as cursor:
        services._lexical_statistics_lock()
        services.lexical_lengths_update("c.knowledge_base_id = %s", [knowledge_base.pk])
        services.postings_build("c.knowledge_base_id = %s", [knowledge_base.pk])
        services._statistics_apply("c.knowledge_base_id = %s", [knowledge_base.pk], 1)
        cursor.execute(
            """
            UPDATE knowledge_document d SET status = 'ready', active_generation = 1,
                   chunk_count = (SELECT COUNT(*) FROM knowledge_chunk c WHERE c.document_id = d.id)
             WHERE d.knowledge_base_id = %s
            """,
            [knowledge_base.pk],
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE knowledge_chunk")
        cursor.execute("ANALYZE knowledge_posting")
    return keys


def knowledge_base_acl(knowledge_base: KnowledgeBase) -> Acl:
    # every chunk of an evaluation knowledge base is active (one generation, loaded at once)
    return Acl(
        "c.knowledge_base_id = ANY(%s)", [[knowledge_base.pk]], "p.knowledge_base_id = ANY(%s)", [knowledge_base.pk]
    )


def documents_ranked(chunk_ranking: Iterable[tuple[int, float]], chunk_to_doc: dict[int, str]) -> list[str]:
    """Document keys in order of their best chunk."""
    seen: dict[str, None] = {}
    for chunk_id, _ in chunk_ranking:
        key = chunk_to_doc.get(chunk_id)
        if key is not None and key not in seen:
            seen[key] = None
    return list(seen)


def ndcg_at(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum((2 ** relevant.get(key, 0) - 1) / math.log2(i + 2) for i, key in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum((2**grade - 1) / math.log2(i + 2) for i, grade in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranked: Sequence[str], relevant: dict[str, int], k: int = 100) -> float:
    wanted = {key for key, grade in relevant.items() if grade > 0}
    return len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0


def mrr_at(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    for i, key in enumerate(ranked[:k]):
        if relevant.get(key, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else 0.0


# ---- a business QA folder (documents beside a ground_truth.jsonl) ------------------------------------------
QA_SUFFIXES = frozenset({".pdf", ".md", ".docx", ".html", ".txt"})
ERROR_QA_DOCUMENT = "{name}: {error}"


@dataclass(frozen=True)
class QaFolder:
    files: list[Path]
    questions: list[dict[str, str]]  # {"question": ..., "truth": "... [file.pdf#page=N]"}


def qa_folder_read(folder: Path, limit_questions: int = 0) -> QaFolder:
    """The folder's documents (licence files left out) and its ground-truth questions; FileNotFoundError
    when it has no ground_truth.jsonl."""
    truth_path = folder / "ground_truth.jsonl"
    if not truth_path.exists():
        raise FileNotFoundError(f"{truth_path} not found.")
    files = sorted(
        path
        for path in folder.iterdir()
        if path.suffix.lower() in QA_SUFFIXES and not path.name.upper().startswith("LICENSE")
    )
    lines = truth_path.read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line) for line in lines if line.strip()]
    return QaFolder(files, questions[:limit_questions] if limit_questions else questions)


def qa_folder_ingest(
    knowledge_base: KnowledgeBase, files: Iterable[Path], progress: Callable[[int], object] | None = None
) -> int:
    """Upload and process each file through the live ingestion services; the number of chunks made.
    ValueError (naming the file) when one does not become ready."""
    chunks = 0
    for path in files:
        document = services.document_upload(
            actor=None, knowledge_base=knowledge_base, filename=path.name, data=path.read_bytes()
        ).stored
        services.document_process(document_id=document.pk, generation=document.generation)
        document.refresh_from_db()
        if document.status != DocumentStatus.READY:
            raise ValueError(ERROR_QA_DOCUMENT.format(name=path.name, error=document.error))
        chunks += document.chunk_count
        if progress is not None:
            progress(1)
    return chunks
