"""Knowledge bases, their documents and the searchable chunks of those documents.

Search reads only the chunks of a document's active generation: a new version is written as chunks of
a new generation and switched on in one transaction that moves `Document.active_generation` (see
knowledge.services.document_activate), so a search sees either the old version or the new one, never a
mix.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.files.storage import Storage, storages
from django.db import models
from pgvector.django import HnswIndex, VectorField

EMBEDDING_DIMENSION = 384


def pages_label(first: int | None, last: int | None) -> str:
    """ "page 7", or "pages 7–8" for a chunk that runs on over a page break; "" without pages."""
    if not first:
        return ""
    return f"pages {first}–{last}" if last and last > first else f"page {first}"


class DocumentStorage(Storage):
    """Forwards to the storage named by KNOWLEDGE_STORAGE_ALIAS, looked up at each use (not at import)."""

    def _target(self) -> Storage:
        return storages[settings.KNOWLEDGE_STORAGE_ALIAS]

    def _open(self, name: str, mode: str = "rb") -> Any:
        return self._target().open(name, mode)

    def _save(self, name: str, content: Any) -> str:
        return self._target().save(name, content)

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        return self._target().get_available_name(name, max_length)

    def delete(self, name: str) -> None:
        self._target().delete(name)

    def exists(self, name: str) -> bool:
        return self._target().exists(name)

    def size(self, name: str) -> int:
        return self._target().size(name)

    def path(self, name: str) -> str:
        return self._target().path(name)

    def url(self, name: str | None) -> str:
        return self._target().url(name)


_DOCUMENT_STORAGE = DocumentStorage()


def document_storage() -> Storage:
    return _DOCUMENT_STORAGE


def document_upload_to(instance: Document, filename: str) -> str:
    return f"knowledge/{instance.knowledge_base_id}/{instance.sha256[:2]}/{instance.sha256}/{filename}"


class Classification(models.TextChoices):
    PUBLIC = "public", "Public"
    INTERNAL = "internal", "Internal"
    CONFIDENTIAL = "confidential", "Confidential"
    LOCAL_ONLY = "local_only", "Local only (never leaves the server)"


class KnowledgeBase(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    embedding_model = models.CharField(max_length=200, default="all-MiniLM-L6-v2")
    embedding_dimension = models.PositiveIntegerField(default=EMBEDDING_DIMENSION)
    classification = models.CharField(max_length=20, choices=Classification.choices, default=Classification.INTERNAL)
    # A base that belongs to something else (the files attached to one conversation, in portal.assistant, whose
    # row points here): never listed, offered or searched unless a caller names it by id, and only its owner holds
    # permissions on it.
    unlisted = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("manage_knowledgebase", "Can grant access to the knowledge base")]

    def __str__(self) -> str:
        return self.name


class DocumentStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class Document(models.Model):
    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=300)
    original_filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100, blank=True)
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, db_index=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=20, choices=DocumentStatus.choices, default=DocumentStatus.QUEUED)
    error = models.TextField(blank=True)
    page_count = models.PositiveIntegerField(null=True, blank=True)
    file = models.FileField(upload_to=document_upload_to, storage=document_storage, max_length=500, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    restricted_to_roles = models.ManyToManyField(
        Group, blank=True, related_name="+", help_text="Empty: everyone who may view the knowledge base."
    )
    # The generation being built by the ingestion task; chunks of `active_generation` are searchable.
    generation = models.PositiveIntegerField(default=1)
    active_generation = models.PositiveIntegerField(default=0)
    chunk_count = models.PositiveIntegerField(default=0)
    # Progress of the generation being built, for the pages that poll it: chunks it will have once every one
    # is embedded (known after extraction and chunking), and chunks embedded and stored so far.
    chunks_planned = models.PositiveIntegerField(default=0)
    chunks_embedded = models.PositiveIntegerField(default=0)
    # Renewed by the running ingestion task (portal.core.jobs); a processing document whose heartbeat stopped
    # lost its worker, and the sweep queues it again, at most JOBS_MAX_REQUEUES times per generation.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    requeues = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["title", "pk"]
        indexes = [models.Index(fields=["knowledge_base", "sha256"])]

    def __str__(self) -> str:
        return self.title

    @property
    def is_final(self) -> bool:
        return self.status in {DocumentStatus.READY, DocumentStatus.FAILED}

    @property
    def progress_percent(self) -> int | None:
        """How far the ingestion of the current generation is, once its chunk count is known."""
        if self.status != DocumentStatus.PROCESSING or not self.chunks_planned:
            return None
        return min(100, self.chunks_embedded * 100 // self.chunks_planned)


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    # Copied from the document so permission filters are plain column tests the HNSW scan can apply.
    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="+")
    generation = models.PositiveIntegerField()
    position = models.PositiveIntegerField()
    text = models.TextField()
    heading_path = models.CharField(max_length=500, blank=True)
    page_number = models.PositiveIntegerField(null=True, blank=True)
    # last page the chunk's text comes from, when it runs on over a page break (else equal or null)
    page_end = models.PositiveIntegerField(null=True, blank=True)
    # [[character offset, page], ...] where each page's text begins, for a chunk over several pages
    page_starts = models.JSONField(default=list, blank=True)
    token_count = models.PositiveIntegerField(default=0)
    embedding = VectorField(dimensions=EMBEDDING_DIMENSION)
    # BM25 document length: number of indexed terms (sum of the postings' tf).
    lexical_length = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["document", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["document", "generation", "position"], name="knowledge_chunk_unique_position"
            )
        ]
        indexes = [
            HnswIndex(
                name="knowledge_chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.position}"

    @property
    def pages_label(self) -> str:
        """Worded as search results and citations word it ("page 7", "pages 7–8")."""
        return pages_label(self.page_number, self.page_end)


class Posting(models.Model):
    """Lexical index: one row per (term, active chunk) with the term frequency, for BM25 scoring in SQL.

    Postings exist only for the active generation of a document (they are written when it activates), and
    they carry copies of what the BM25 query filters and scores on (knowledge base, document, chunk
    length), so that query reads nothing but the index knowledge_posting_term_tf.
    """

    term = models.CharField(max_length=100)
    chunk = models.ForeignKey(Chunk, on_delete=models.CASCADE, related_name="+", db_index=False)
    tf = models.PositiveIntegerField()
    knowledge_base_id = models.BigIntegerField()
    document_id = models.BigIntegerField()
    # the chunk's lexical_length (BM25 document length)
    chunk_length = models.PositiveIntegerField()

    class Meta:
        constraints = [
            # also the index that cascading chunk deletes use
            models.UniqueConstraint(fields=["chunk", "term"], name="knowledge_posting_chunk_term")
        ]
        indexes = [
            # the BM25 leg walks each query term's postings by descending tf and stops at a cap; the
            # included columns let it filter by permission and score without visiting the table
            models.Index(
                fields=["term", "-tf"],
                include=["chunk", "knowledge_base_id", "document_id", "chunk_length"],
                name="knowledge_posting_term_tf",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.term}@{self.chunk_id}"


class TermStatistic(models.Model):
    """Document frequency of a term over one knowledge base's active chunks (kept current on activation).

    Kept per knowledge base so that a search's BM25 weights come only from the knowledge bases it
    searches: another base's content neither shifts the ranking nor shows through the scores.
    """

    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="+")
    term = models.CharField(max_length=100)
    document_frequency = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["term", "knowledge_base"], name="knowledge_termstatistic_term_base")
        ]
        # the spelling tolerance's prefix lookups (term LIKE 'he%') in any database collation
        indexes = [models.Index(fields=["term"], name="knowledge_term_prefix", opclasses=["text_pattern_ops"])]

    def __str__(self) -> str:
        return f"{self.term}: {self.document_frequency}"


class LexicalStatistics(models.Model):
    """Per knowledge base: number of active chunks and their total length, for BM25's N and average length."""

    knowledge_base = models.OneToOneField(KnowledgeBase, on_delete=models.CASCADE, related_name="+")
    chunk_count = models.BigIntegerField(default=0)
    total_length = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.chunk_count} chunks"
