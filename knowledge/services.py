"""Writes for knowledge bases: creation, access grants, uploads, moves, ingestion, deletion."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from audit.privacy import text_fingerprint
from audit.services import audit
from knowledge import embeddings
from knowledge.chunking import ChunkDraft, chunk_blocks
from knowledge.extraction import ERROR_TOO_LARGE, ExtractionError, content_type_for, extract, upload_problem
from knowledge.models import Chunk, Classification, Document, DocumentStatus, KnowledgeBase
from knowledge.search import ACTIVE_CHUNK_SQL
from portal.core import jobs
from portal.core.parameters import parameter_value

logger = logging.getLogger(__name__)

ERROR_NO_CHANGE_PERMISSION = "You may not change this knowledge base."
ERROR_NO_MANAGE_PERMISSION = "You may not manage access to this knowledge base."
ERROR_UNKNOWN_LEVEL = "Unknown access level {level!r}."
ERROR_GRANTEE = "Grant access to exactly one role or one user."
ERROR_DOCUMENT_FILE_MISSING = "The original file is no longer stored; upload it again."
ERROR_INTERNAL = "Processing failed unexpectedly ({error}); try re-processing the document."
ERROR_MOVE_SAME_BASE = "The document is already in this knowledge base."
ERROR_MOVE_NAME_TAKEN = "The other knowledge base already has a document from a file with this name."
ERROR_MOVE_DUPLICATE = "The other knowledge base already has a document with the same content."

# Access levels are cumulative: change implies view, manage implies change and view.
ACCESS_LEVELS: dict[str, tuple[str, ...]] = {
    "view": ("view_knowledgebase",),
    "change": ("view_knowledgebase", "change_knowledgebase"),
    "manage": ("view_knowledgebase", "change_knowledgebase", "manage_knowledgebase"),
}
ALL_OBJECT_PERMISSIONS = ("view_knowledgebase", "change_knowledgebase", "manage_knowledgebase")


def max_upload_bytes() -> int:
    return int(parameter_value("upload_max_mb"))


# ---- knowledge bases and access --------------------------------------------------------------------
@transaction.atomic
def knowledge_base_create(
    *,
    actor: User | None,
    name: str,
    description: str = "",
    classification: str = Classification.INTERNAL,
    unlisted: bool = False,
) -> KnowledgeBase:
    knowledge_base = KnowledgeBase(
        name=name,
        description=description,
        owner=actor,
        classification=classification,
        unlisted=unlisted,
        embedding_model=embeddings.model_name(),
        embedding_dimension=embeddings.EMBEDDING_DIMENSION,
    )
    knowledge_base.full_clean()
    knowledge_base.save()
    if actor is not None:
        for codename in ACCESS_LEVELS["manage"]:
            assign_perm(codename, actor, knowledge_base)
    audit(
        actor=actor,
        actor_username="" if actor else "system",
        action="knowledge.knowledge_base_created",
        target=knowledge_base,
        details={"name": name, "classification": classification, "unlisted": unlisted},
    )
    return knowledge_base


@transaction.atomic
def knowledge_base_delete(*, actor: User | None, knowledge_base: KnowledgeBase) -> None:
    """Delete a knowledge base with its documents (each through document_delete: audited, its stored file
    removed once this commits), chunks, postings and BM25 statistics. The actor must manage the base."""
    if actor is not None:
        _require(actor, "manage_knowledgebase", knowledge_base, ERROR_NO_MANAGE_PERMISSION)
    documents = list(Document.objects.select_for_update().filter(knowledge_base=knowledge_base).order_by("pk"))
    for document in documents:
        document_delete(actor=None, document=document)  # the actor's right was checked on the whole base
    audit(
        actor=actor,
        actor_username="" if actor else "system",
        action="knowledge.knowledge_base_deleted",
        target=knowledge_base,
        details={"knowledge_base_id": knowledge_base.pk, "documents": len(documents)},
    )
    knowledge_base.delete()


@transaction.atomic
def knowledge_bases_delete(*, actor: User | None, knowledge_base_ids: Sequence[int]) -> int:
    """knowledge_base_delete for each of these bases (for apps that keep only the id); returns how many."""
    bases = list(KnowledgeBase.objects.select_for_update().filter(pk__in=list(knowledge_base_ids)).order_by("pk"))
    for knowledge_base in bases:
        knowledge_base_delete(actor=actor, knowledge_base=knowledge_base)
    return len(bases)


def _filename_details(filename: str) -> dict[str, Any]:
    """A filename can name a person ("J Smith sick note.pdf"): the trail keeps its extension and fingerprint; the
    document row, which can be deleted, keeps the name."""
    extension = filename.rsplit(".", 1)[-1].lower()[:10] if "." in filename else ""
    return {"extension": extension, **text_fingerprint(filename, name="filename")}


def _require(actor: User, codename: str, knowledge_base: KnowledgeBase, message: str) -> None:
    if not actor.has_perm(f"knowledge.{codename}", knowledge_base):
        raise PermissionDenied(message)


@transaction.atomic
def knowledge_base_grant(
    *,
    actor: User | None,
    knowledge_base: KnowledgeBase,
    level: str,
    group: Group | None = None,
    user: User | None = None,
) -> None:
    """Give a role or a user exactly `level` access ("none" removes all access)."""
    if actor is not None:
        _require(actor, "manage_knowledgebase", knowledge_base, ERROR_NO_MANAGE_PERMISSION)
    if level != "none" and level not in ACCESS_LEVELS:
        raise ValidationError(ERROR_UNKNOWN_LEVEL.format(level=level))
    if (group is None) == (user is None):
        raise ValidationError(ERROR_GRANTEE)
    grantee: Group | User = group if group is not None else user  # type: ignore[assignment]
    wanted = set(ACCESS_LEVELS.get(level, ()))
    for codename in ALL_OBJECT_PERMISSIONS:
        if codename in wanted:
            assign_perm(codename, grantee, knowledge_base)
        else:
            remove_perm(codename, grantee, knowledge_base)
    audit(
        actor=actor,
        actor_username="" if actor else "system",
        action="knowledge.access_granted" if wanted else "knowledge.access_revoked",
        target=knowledge_base,
        details={
            "level": level,
            "group": group.name if group is not None else None,
            "user": user.get_username() if user is not None else None,
        },
    )


# ---- uploads --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UploadResult:
    """What became of one uploaded file. A rejected file (empty, too large, of the wrong type) does not
    become a document: `document` is None and `error` says why, naming nothing but the file."""

    document: Document | None
    outcome: str  # "created" | "new_version" | "duplicate" | "rejected"
    filename: str = ""
    error: str = ""

    @property
    def stored(self) -> Document:
        """The document of an accepted upload (callers that only upload good files)."""
        if self.document is None:
            raise ValueError(f"{self.filename}: {self.error}")
        return self.document


def _title_from_filename(filename: str) -> str:
    stem = filename.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return stem.replace("_", " ").replace("-", " ").strip() or filename


@transaction.atomic
def document_upload(
    *,
    actor: User | None,
    knowledge_base: KnowledgeBase,
    filename: str,
    data: bytes | None,
    size: int | None = None,
    title: str = "",
    restricted_roles: Iterable[Group] = (),
) -> UploadResult:
    """Store an uploaded file and queue its ingestion.

    The same content again in the same knowledge base is recognised by its SHA-256 and not stored twice;
    a file with the name of an existing document becomes that document's next version. `data=None` with
    a `size` is an upload refused before reading (over the size limit). Refused files (empty, too large,
    unsupported, not what their extension says) are audited against the knowledge base and stored nowhere.
    """
    if actor is not None:
        _require(actor, "change_knowledgebase", knowledge_base, ERROR_NO_CHANGE_PERMISSION)
    filename = _clean_filename(filename)
    size = len(data) if data is not None else int(size or 0)
    problem = _upload_problem(data, filename=filename, size=size)
    if problem is not None:
        return _upload_reject(actor=actor, knowledge_base=knowledge_base, filename=filename, size=size,
                              problem=problem)  # fmt: skip
    assert data is not None  # a missing body is refused above
    digest = hashlib.sha256(data).hexdigest()
    duplicate = _upload_duplicate(actor=actor, knowledge_base=knowledge_base, filename=filename, digest=digest)
    if duplicate is not None:
        return duplicate
    previous = (
        Document.objects.select_for_update()
        .filter(knowledge_base=knowledge_base, original_filename=filename)
        .order_by("-pk")
        .first()
    )
    if previous is not None:
        document = _document_new_version(previous, actor=actor, filename=filename, data=data, digest=digest,
                                         title=title)  # fmt: skip
        outcome = "new_version"
    else:
        document = _document_new(knowledge_base, actor=actor, filename=filename, data=data, digest=digest,
                                 title=title, restricted_roles=restricted_roles)  # fmt: skip
        outcome = "created"
    audit(
        actor=actor,
        action="knowledge.document_uploaded",
        target=document,
        details={
            **_filename_details(filename),
            "size": size,
            "sha256": digest,
            "version": document.version,
            "outcome": outcome,
            "knowledge_base_id": knowledge_base.pk,
        },
    )
    _queue_processing(document)
    return UploadResult(document, outcome, filename=filename)


def upload_refusal(*, filename: str, data: bytes | None, size: int | None = None) -> str | None:
    """Why document_upload would refuse this file (as it words it), or None: for callers that must know before
    they create anything for it."""
    size = len(data) if data is not None else int(size or 0)
    return _upload_problem(data, filename=_clean_filename(filename), size=size)


def _clean_filename(filename: str) -> str:
    return filename.replace("\\", "/").rsplit("/", 1)[-1][:255] or "unnamed"


def _upload_problem(data: bytes | None, *, filename: str, size: int) -> str | None:
    """Why this file is refused (empty, too large, unsupported, not what its extension says), or None."""
    limit = max_upload_bytes()
    if data is None or size > limit:
        return ERROR_TOO_LARGE.format(size=size, limit=limit)
    return upload_problem(data, filename, max_bytes=limit)


def _upload_reject(
    *, actor: User | None, knowledge_base: KnowledgeBase, filename: str, size: int, problem: str
) -> UploadResult:
    """A refused file is stored nowhere; the refusal is audited against the knowledge base."""
    audit(
        actor=actor,
        action="knowledge.document_rejected",
        target=knowledge_base,
        outcome="failure",
        details={**_filename_details(filename), "size": size, "error": problem},
    )
    return UploadResult(None, "rejected", filename=filename, error=problem)


def _upload_duplicate(
    *, actor: User | None, knowledge_base: KnowledgeBase, filename: str, digest: str
) -> UploadResult | None:
    """The same content is already in this knowledge base (and did not fail): keep that one, store nothing."""
    existing = (
        Document.objects.select_for_update()
        .filter(knowledge_base=knowledge_base, sha256=digest)
        .exclude(status=DocumentStatus.FAILED)
        .first()
    )
    if existing is None:
        return None
    audit(
        actor=actor,
        action="knowledge.document_duplicate",
        target=existing,
        details={**_filename_details(filename), "sha256": digest},
    )
    return UploadResult(existing, "duplicate", filename=filename)


def _document_new_version(
    previous: Document, *, actor: User | None, filename: str, data: bytes, digest: str, title: str
) -> Document:
    """The next version of the document with this file name: new content, processed again from scratch."""
    document = previous
    old_file = document.file.name if document.file else ""
    document.version += 1
    document.generation += 1
    document.requeues = 0
    document.sha256 = digest
    document.size = len(data)
    document.content_type = content_type_for(filename)
    document.status = DocumentStatus.QUEUED
    document.error = ""
    document.uploaded_by = actor
    if title:
        document.title = title[:300]
    document.file.save(filename, ContentFile(data), save=False)
    document.full_clean()
    document.save()
    if old_file and old_file != document.file.name:
        storage = document.file.storage
        transaction.on_commit(lambda: storage.delete(old_file))  # the old version's file, once this commits
    return document


def _document_new(
    knowledge_base: KnowledgeBase,
    *,
    actor: User | None,
    filename: str,
    data: bytes,
    digest: str,
    title: str,
    restricted_roles: Iterable[Group],
) -> Document:
    document = Document(
        knowledge_base=knowledge_base,
        title=(title or _title_from_filename(filename))[:300],
        original_filename=filename,
        content_type=content_type_for(filename),
        size=len(data),
        sha256=digest,
        uploaded_by=actor,
    )
    document.file.save(filename, ContentFile(data), save=False)
    document.full_clean()
    document.save()
    document.restricted_to_roles.set(list(restricted_roles))
    return document


def _queue_processing(document: Document) -> None:
    from knowledge.tasks import document_process_task

    document_id, generation = document.pk, document.generation
    transaction.on_commit(lambda: document_process_task.delay(document_id, generation))


@transaction.atomic
def document_reprocess(*, actor: User | None, document: Document) -> Document:
    if actor is not None:
        _require(actor, "change_knowledgebase", document.knowledge_base, ERROR_NO_CHANGE_PERMISSION)
    document = Document.objects.select_for_update().get(pk=document.pk)
    if not document.file:
        raise ValidationError(ERROR_DOCUMENT_FILE_MISSING)
    document.generation += 1
    document.requeues = 0
    document.status = DocumentStatus.QUEUED
    document.error = ""
    document.save(update_fields=["generation", "requeues", "status", "error", "updated_at"])
    audit(actor=actor, action="knowledge.document_reprocess_requested", target=document)
    _queue_processing(document)
    return document


@transaction.atomic
def document_set_restriction(*, actor: User | None, document: Document, roles: Sequence[Group]) -> None:
    if actor is not None:
        _require(actor, "change_knowledgebase", document.knowledge_base, ERROR_NO_CHANGE_PERMISSION)
    document.restricted_to_roles.set(list(roles))
    audit(
        actor=actor,
        action="knowledge.document_restricted",
        target=document,
        details={"roles": sorted(role.name for role in roles)},
    )


@transaction.atomic
def document_delete(*, actor: User | None, document: Document) -> None:
    if actor is not None:
        _require(actor, "change_knowledgebase", document.knowledge_base, ERROR_NO_CHANGE_PERMISSION)
    _lexical_statistics_lock()
    _lexical_statistics_remove(document.pk)
    file_name = document.file.name if document.file else ""
    storage = document.file.storage
    audit(
        actor=actor,
        action="knowledge.document_deleted",
        target=document,
        # ids, never the title or filename: they are typed text, and the trail cannot forget them
        details={
            "document_id": document.pk,
            "knowledge_base_id": document.knowledge_base_id,
            "version": document.version,
        },  # fmt: skip
    )
    document.delete()
    if file_name:
        transaction.on_commit(lambda: storage.delete(file_name))


@transaction.atomic
def document_move(*, actor: User | None, document: Document, knowledge_base: KnowledgeBase) -> Document:
    """Move a document, with its chunks, postings and their share of the BM25 statistics, to another base.

    Chunks and postings carry copies of the knowledge base id (the search filters on those columns, not
    on the document), so all of them move with the document in this one transaction: from its commit on,
    readers of the old base no longer find the text, readers of the new one do. The actor must be able
    to change both knowledge bases (remove it from one, add it to the other).
    """
    document = Document.objects.select_for_update().select_related("knowledge_base").get(pk=document.pk)
    source = document.knowledge_base
    if actor is not None:
        _require(actor, "change_knowledgebase", source, ERROR_NO_CHANGE_PERMISSION)
        _require(actor, "change_knowledgebase", knowledge_base, ERROR_NO_CHANGE_PERMISSION)
    if knowledge_base.pk == source.pk:
        raise ValidationError(ERROR_MOVE_SAME_BASE)
    # Upload recognises a new version by its file name and a duplicate by its content, per base.
    others = Document.objects.filter(knowledge_base=knowledge_base)
    if others.filter(original_filename=document.original_filename).exists():
        raise ValidationError(ERROR_MOVE_NAME_TAKEN)
    if document.sha256 and others.filter(sha256=document.sha256).exclude(status=DocumentStatus.FAILED).exists():
        raise ValidationError(ERROR_MOVE_DUPLICATE)
    _lexical_statistics_lock()
    _lexical_statistics_remove(document.pk)  # from the old base's statistics (grouped by the chunks' base)
    # Every generation moves, also one an ingestion task is still building: its chunks are searchable
    # only once activated, and activation gives them the document's base again in any case.
    chunks = Chunk.objects.filter(document_id=document.pk).update(knowledge_base_id=knowledge_base.pk)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE knowledge_posting SET knowledge_base_id = %s WHERE document_id = %s",
            [knowledge_base.pk, document.pk],
        )
        postings = cursor.rowcount
    _statistics_apply(f"c.document_id = %s AND {ACTIVE_CHUNK_SQL.format(a='c')}", [document.pk], 1)
    document.knowledge_base = knowledge_base
    document.save(update_fields=["knowledge_base", "updated_at"])
    audit(
        actor=actor,
        actor_username="" if actor else "system",
        action="knowledge.document_moved",
        target=document,
        details={
            "from_knowledge_base_id": source.pk,
            "to_knowledge_base_id": knowledge_base.pk,
            "chunks": chunks,
            "postings": postings,
        },
    )
    return document


# ---- ingestion ------------------------------------------------------------------------------------
def embedding_input(title: str, heading_path: str, text: str) -> str:
    """What the model sees: the chunk with its document title and section, which carry much meaning."""
    context = " — ".join(part for part in (title, heading_path) if part)
    return f"{context}\n{text}" if context else text


def lexical_input(title: str, heading_path: str, text: str) -> str:
    return "\n".join(part for part in (title, heading_path, text) if part)


def _document_claim(document_id: int, generation: int) -> Document | None:
    """Mark the document processing unless this generation is already done or superseded."""
    with transaction.atomic():
        document = Document.objects.select_for_update().filter(pk=document_id).first()
        if document is None or document.generation != generation:
            return None
        if document.active_generation == generation and document.status == DocumentStatus.READY:
            return None
        if document.status == DocumentStatus.FAILED:  # e.g. given up on by the sweep; Re-process starts anew
            return None
        document.status = DocumentStatus.PROCESSING
        document.error = ""
        document.heartbeat_at = timezone.now()  # also when resuming: the sweep sees this attempt alive
        document.chunks_planned = document.chunks_embedded = 0  # known again once the file is chunked
        document.save(
            update_fields=["status", "error", "heartbeat_at", "chunks_planned", "chunks_embedded", "updated_at"]
        )
        return document


def document_heartbeat(*, document_id: int, generation: int) -> None:
    """The running task's sign of life (see portal.core.jobs); only while this generation is processing."""
    Document.objects.filter(pk=document_id, generation=generation, status=DocumentStatus.PROCESSING).update(
        heartbeat_at=timezone.now()
    )


@transaction.atomic
def documents_requeue_stalled(*, now: datetime | None = None) -> list[int]:
    """Queue again the processing documents whose task stopped renewing its heartbeat (its worker died).

    Periodic (Celery beat). The new attempt resumes: document_process keeps the chunks the dead attempt stored
    and embeds only the missing positions, and should the old attempt still be alive, both store into the same
    (document, generation, position) slots, which cannot hold two chunks, and the second activation is skipped.
    A document interrupted more than JOBS_MAX_REQUEUES times fails instead (it may be what kills the worker).
    Returns the ids queued again.
    """
    now = now or timezone.now()
    stale = jobs.stale_before(now)
    stalled = (
        Document.objects.select_for_update(skip_locked=True)
        .filter(status=DocumentStatus.PROCESSING)
        .filter(Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, updated_at__lt=stale))
        .order_by("pk")
    )
    requeued: list[int] = []
    for document in stalled:
        if document.requeues >= jobs.max_requeues():
            _document_fail(document.pk, document.generation, jobs.ERROR_INTERRUPTED.format(count=document.requeues))
            continue
        document.requeues += 1
        document.heartbeat_at = now  # the new attempt gets a full lease before the next sweep looks again
        document.save(update_fields=["requeues", "heartbeat_at"])
        audit(
            actor=None,
            actor_username="system",
            action="knowledge.document_requeued",
            target=document,
            details={"version": document.version, "generation": document.generation, "requeues": document.requeues},
        )
        _queue_processing(document)
        requeued.append(document.pk)
    return requeued


@transaction.atomic
def _document_fail(document_id: int, generation: int, message: str) -> None:
    document = Document.objects.select_for_update().filter(pk=document_id).first()
    if document is None or document.generation != generation:
        return
    document.status = DocumentStatus.FAILED
    document.error = message
    document.save(update_fields=["status", "error", "updated_at"])
    # Chunks of the failed generation are useless; the previous version (if any) stays searchable.
    if generation != document.active_generation:
        Chunk.objects.filter(document_id=document_id, generation=generation).delete()
    audit(
        actor=None,
        actor_username="system",
        action="knowledge.document_failed",
        target=document,
        outcome="failure",
        details={"error": message, "version": document.version},
    )


def document_process(*, document_id: int, generation: int) -> str:
    """Extract, chunk, embed and store one generation of a document; returns the final status.

    Idempotent and resumable: chunks already stored for this generation by an attempt that crashed are
    kept (they are identical, chunking is deterministic) and only the missing positions are embedded.
    """
    document = _document_claim(document_id, generation)
    if document is None:
        return "skipped"
    try:
        data = document.file.read() if document.file else None
        if document.file:
            document.file.close()
        if data is None:
            raise ExtractionError(ERROR_DOCUMENT_FILE_MISSING)
        extracted = extract(
            data,
            document.original_filename,
            max_bytes=max_upload_bytes(),
            max_expanded_bytes=int(settings.KNOWLEDGE_MAX_EXPANDED_BYTES),
            max_pdf_pages=int(parameter_value("pdf_max_pages")),
        )
        drafts = chunk_blocks(
            extracted.blocks,
            tokenizer=embeddings.tokenizer(),
            target_tokens=int(settings.KNOWLEDGE_CHUNK_TOKENS),
            overlap_tokens=int(settings.KNOWLEDGE_CHUNK_OVERLAP),
            across_pages=bool(settings.KNOWLEDGE_CHUNK_ACROSS_PAGES),
        )
        if not drafts:
            raise ExtractionError("No text could be found in the file.")
    except ExtractionError as error:
        _document_fail(document_id, generation, str(error))
        return DocumentStatus.FAILED
    except (MemoryError, RecursionError) as error:
        _document_fail(document_id, generation, ERROR_INTERNAL.format(error=type(error).__name__))
        return DocumentStatus.FAILED
    _document_progress(document_id, generation, planned=len(drafts), page_count=extracted.page_count)
    chunks_store(document=document, generation=generation, drafts=drafts)
    return document_activate(document_id=document_id, generation=generation, page_count=extracted.page_count)


STORE_GROUP_BATCHES = 8


def _document_progress(
    document_id: int,
    generation: int,
    *,
    embedded: int | None = None,
    planned: int | None = None,
    page_count: int | None = None,
) -> None:
    """Record how far this generation's ingestion is (only while this generation is the one processing)."""
    fields: dict[str, Any] = {}
    if planned is not None:
        fields.update(chunks_planned=planned, page_count=page_count)
    if embedded is not None:
        fields["chunks_embedded"] = embedded
    Document.objects.filter(pk=document_id, generation=generation, status=DocumentStatus.PROCESSING).update(**fields)


def chunks_store(*, document: Document, generation: int, drafts: Sequence[ChunkDraft]) -> int:
    """Embed and insert the drafts not stored yet for this generation, batch by batch."""
    done = set(Chunk.objects.filter(document=document, generation=generation).values_list("position", flat=True))
    missing = [(position, draft) for position, draft in enumerate(drafts) if position not in done]
    batch_size = int(settings.KNOWLEDGE_EMBED_BATCH)
    # Stored in groups of a few model batches: the model sorts a group's texts by length before
    # batching them (less padding), and a crash loses at most one group's work.
    group_size = batch_size * STORE_GROUP_BATCHES
    _document_progress(document.pk, generation, embedded=len(done))
    for start in range(0, len(missing), group_size):
        batch = missing[start : start + group_size]
        vectors = embeddings.embed_texts(
            [embedding_input(document.title, draft.heading_path, draft.text) for _, draft in batch],
            batch_size=batch_size,
        )
        lengths = lexical_lengths([lexical_input(document.title, draft.heading_path, draft.text) for _, draft in batch])
        with transaction.atomic():
            Chunk.objects.bulk_create(
                [
                    Chunk(
                        document=document,
                        knowledge_base_id=document.knowledge_base_id,
                        generation=generation,
                        position=position,
                        text=draft.text,
                        heading_path=draft.heading_path[:500],
                        page_number=draft.page_number,
                        page_end=draft.page_end or draft.page_number,
                        page_starts=[list(start) for start in draft.page_starts],
                        token_count=draft.token_count,
                        embedding=vector,
                        lexical_length=length,
                    )
                    for (position, draft), vector, length in zip(batch, vectors, lengths, strict=True)
                ],
                ignore_conflicts=True,
            )
        _document_progress(document.pk, generation, embedded=len(done) + start + len(batch))
    return len(missing)


LEXICAL_TEXT_SQL = "d.title || ' ' || c.heading_path || ' ' || c.text"
LEXICAL_TERMS_SQL = "unnest(to_tsvector('english', {text})) t WHERE length(t.lexeme) <= 100"


def lexical_lengths(texts: Sequence[str]) -> list[int]:
    """BM25 document lengths (indexed terms, repeats counted) of lexical texts, as the postings count them.

    Computed before a chunk is inserted: setting it afterwards would rewrite the row and its index entries.
    """
    if not texts:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT (SELECT COALESCE(SUM(COALESCE(array_length(t.positions, 1), 1)), 0)
                      FROM {LEXICAL_TERMS_SQL.format(text="u.body")})
              FROM unnest(%s::text[]) WITH ORDINALITY AS u(body, i) ORDER BY u.i
            """,  # noqa: S608 (literals of this module)
            [list(texts)],
        )
        return [int(length) for (length,) in cursor.fetchall()]


def lexical_lengths_update(where_sql: str, params: Sequence[Any]) -> None:
    """Set `lexical_length` of the chunks (alias c) matching `where_sql`, for loaders that insert chunks
    in bulk without it (evaluation and benchmark corpora); ingestion computes it before the insert."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE knowledge_chunk c SET lexical_length = (
                   SELECT COALESCE(SUM(COALESCE(array_length(t.positions, 1), 1)), 0)
                     FROM {LEXICAL_TERMS_SQL.format(text=LEXICAL_TEXT_SQL)})
              FROM knowledge_document d
             WHERE d.id = c.document_id AND {where_sql}
            """,  # noqa: S608 (literals of this module and of the callers; values are parameters)
            list(params),
        )


def postings_build(where_sql: str, params: Sequence[Any], *, replace: bool = True) -> None:
    """Lexical index rows of the chunks (alias c) matching `where_sql` (PostgreSQL's english stemming).

    For a document this runs inside the activating transaction, so its postings appear together with its
    chunks. Postings already there for those chunks (none in the normal course) are replaced: idempotent.
    A bulk loader of chunks it has just inserted passes `replace=False` and skips looking for them.
    """
    with connection.cursor() as cursor:
        if replace:
            cursor.execute(
                f"DELETE FROM knowledge_posting p USING knowledge_chunk c WHERE c.id = p.chunk_id AND {where_sql}",  # noqa: S608
                list(params),
            )
        cursor.execute(
            f"""
            INSERT INTO knowledge_posting (term, chunk_id, tf, knowledge_base_id, document_id, chunk_length)
            SELECT t.lexeme, c.id, COALESCE(array_length(t.positions, 1), 1),
                   c.knowledge_base_id, c.document_id, c.lexical_length
              FROM knowledge_chunk c JOIN knowledge_document d ON d.id = c.document_id
             CROSS JOIN LATERAL {LEXICAL_TERMS_SQL.format(text=LEXICAL_TEXT_SQL)}
               AND {where_sql}
            """,  # noqa: S608 (where_sql is a literal of the callers; values are parameters)
            list(params),
        )


LEXICAL_STATISTICS_LOCK = 7_301_001  # advisory lock key: one writer of the BM25 statistics at a time


def _lexical_statistics_lock() -> None:
    """Serialise changes to the BM25 statistics (an advisory lock held until the transaction ends)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LEXICAL_STATISTICS_LOCK])


def _statistics_apply(where_sql: str, params: list[Any], sign: int) -> None:
    """Add (sign 1) or remove (sign -1) the chunks matching `where_sql` to/from their knowledge bases'
    BM25 statistics."""
    frequencies = f"""
        SELECT c.knowledge_base_id, p.term, COUNT(*) AS n
          FROM knowledge_posting p JOIN knowledge_chunk c ON c.id = p.chunk_id
         WHERE {where_sql} GROUP BY c.knowledge_base_id, p.term ORDER BY 1, 2
    """  # noqa: S608 (where_sql is a literal of this module; values are parameters)
    with connection.cursor() as cursor:
        if sign > 0:
            cursor.execute(
                f"""
                INSERT INTO knowledge_termstatistic (knowledge_base_id, term, document_frequency)
                SELECT knowledge_base_id, term, n FROM ({frequencies}) f
                ON CONFLICT (term, knowledge_base_id) DO UPDATE
                  SET document_frequency = knowledge_termstatistic.document_frequency + EXCLUDED.document_frequency
                """,  # noqa: S608
                params,
            )
        else:
            cursor.execute(
                f"""
                UPDATE knowledge_termstatistic t SET document_frequency = GREATEST(t.document_frequency - f.n, 0)
                FROM ({frequencies}) f WHERE t.term = f.term AND t.knowledge_base_id = f.knowledge_base_id
                """,  # noqa: S608
                params,
            )
        sizes = f"""
            SELECT c.knowledge_base_id, COUNT(*) AS n, COALESCE(SUM(c.lexical_length), 0) AS length
              FROM knowledge_chunk c WHERE {where_sql} GROUP BY c.knowledge_base_id ORDER BY 1
        """  # noqa: S608 (as above)
        if sign > 0:
            cursor.execute(
                f"""
                INSERT INTO knowledge_lexicalstatistics AS s (knowledge_base_id, chunk_count, total_length)
                SELECT knowledge_base_id, n, length FROM ({sizes}) z
                ON CONFLICT (knowledge_base_id) DO UPDATE
                  SET chunk_count = s.chunk_count + EXCLUDED.chunk_count,
                      total_length = s.total_length + EXCLUDED.total_length
                """,  # noqa: S608
                params,
            )
        else:
            cursor.execute(
                f"""
                UPDATE knowledge_lexicalstatistics s SET chunk_count = GREATEST(s.chunk_count - z.n, 0),
                       total_length = GREATEST(s.total_length - z.length, 0)
                  FROM ({sizes}) z WHERE s.knowledge_base_id = z.knowledge_base_id
                """,  # noqa: S608
                params,
            )


def lexical_statistics_rebuild() -> None:
    """Recompute the BM25 statistics from the active chunks (after bulk deletes outside the services)."""
    with transaction.atomic():
        _lexical_statistics_lock()
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM knowledge_termstatistic")
            cursor.execute("DELETE FROM knowledge_lexicalstatistics")
        _statistics_apply(ACTIVE_CHUNK_SQL.format(a="c"), [], 1)


def _lexical_statistics_remove(document_id: int) -> None:
    _statistics_apply(f"c.document_id = %s AND {ACTIVE_CHUNK_SQL.format(a='c')}", [document_id], -1)


@transaction.atomic
def document_activate(*, document_id: int, generation: int, page_count: int | None = None) -> str:
    """Switch a document's searchable chunks to `generation` in one transaction."""
    _lexical_statistics_lock()
    document = Document.objects.select_for_update().filter(pk=document_id).first()
    if document is None or document.generation != generation:
        return "skipped"
    if document.active_generation == generation and document.status == DocumentStatus.READY:
        return "skipped"  # a concurrent attempt at this generation (see documents_requeue_stalled) got here first
    # The switch itself is document.active_generation (saved below): the chunks are not touched, so
    # their rows and index entries (the HNSW graph's included) are written once, when stored.
    _lexical_statistics_remove(document_id)
    Chunk.objects.filter(document_id=document_id).exclude(generation=generation).delete()
    # A task that started before the document was moved stored its chunks with the old base's id: the
    # document row (locked above) says where they belong, and postings copy it from the chunks.
    Chunk.objects.filter(document_id=document_id, generation=generation).exclude(
        knowledge_base_id=document.knowledge_base_id
    ).update(knowledge_base_id=document.knowledge_base_id)
    this_generation = ("c.document_id = %s AND c.generation = %s", [document_id, generation])
    postings_build(*this_generation)
    _statistics_apply(*this_generation, 1)
    document.active_generation = generation
    document.chunk_count = Chunk.objects.filter(document_id=document_id, generation=generation).count()
    document.page_count = page_count
    document.status = DocumentStatus.READY
    document.error = ""
    document.processed_at = timezone.now()
    document.save()
    audit(
        actor=None,
        actor_username="system",
        action="knowledge.document_ready",
        target=document,
        details={"version": document.version, "chunks": document.chunk_count, "pages": page_count},
    )
    from knowledge.hooks import document_ready

    transaction.on_commit(lambda: document_ready(document_id))  # e.g. the local sensitivity scan (portal/ml)
    return DocumentStatus.READY
