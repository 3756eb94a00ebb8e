"""Writing the audit trail. Every other app records what it does through `audit()`."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.db import connection, models, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from audit.chain import GENESIS_HASH, HASHED_FIELDS, event_hash, format_time, normalise_details
from audit.checkpoints import (
    Checkpoint,
    checkpoint_sign,
    checkpoint_time,
    checkpoint_write,
    latest_checkpoint,
    load_private_key,
    private_key_ensure,
    public_key_write,
)
from audit.exports import render_rows
from audit.filters import AuditFilter
from audit.models import AuditEvent, AuditExport, AuditVerification, ExportFormat, ExportStatus, Outcome
from audit.privacy import text_fingerprint
from portal.core import jobs
from portal.core.memberships import user_role_names

logger = logging.getLogger(__name__)

# Arbitrary constant: the key of the PostgreSQL advisory lock that serialises chain appends.
AUDIT_CHAIN_LOCK_KEY = 0x4155_4449_5400  # "AUDIT"
MAX_ROLE_NAMES = 20
_INSERT_COLUMNS = (*HASHED_FIELDS, "hash")
_JSON_COLUMNS = frozenset({"actor_roles", "details"})
_INSERT_SQL = "INSERT INTO {table} ({columns}) VALUES {{rows}} RETURNING seq, id".format(
    table=AuditEvent._meta.db_table, columns=", ".join(_INSERT_COLUMNS)
)
_INSERT_ROW = "({})".format(", ".join("%s::jsonb" if name in _JSON_COLUMNS else "%s" for name in _INSERT_COLUMNS))


def actor_roles(actor: User | AnonymousUser | None) -> list[str]:
    return user_role_names(actor)[:MAX_ROLE_NAMES]


def client_address(request: HttpRequest | None) -> str:
    if request is None:
        return ""
    return str(request.META.get("REMOTE_ADDR", ""))


# Events recorded inside `audit_batch()` (and outside any transaction), waiting to be written together.
_pending_batch: ContextVar[list[tuple[Any, dict[str, Any]]] | None] = ContextVar("audit_pending_batch", default=None)


@contextmanager
def audit_batch() -> Iterator[None]:
    """Write the events recorded in this block together, in one transaction, when the block ends.

    For a sequence of steps that each record an event outside any transaction (the assistant's route,
    search and egress decisions): one chain lock and one commit instead of one per event. The events keep
    the time they were recorded and are written when the block ends, also when it ends with an error;
    an event recorded inside a transaction is still written in that transaction, as usual.
    """
    pending: list[tuple[Any, dict[str, Any]]] = []
    token = _pending_batch.set(pending)
    try:
        yield
    finally:
        _pending_batch.reset(token)
        if pending:
            _append(pending)


def audit(
    *,
    actor: User | AnonymousUser | None,
    action: str,
    target: models.Model | None = None,
    object_type: str = "",
    object_id: str | int = "",
    outcome: str = Outcome.SUCCESS,
    details: Mapping[str, Any] | None = None,
    request: HttpRequest | None = None,
    actor_username: str = "",
) -> AuditEvent:
    """Append one event to the chain, inside the caller's transaction.

    The advisory lock is transaction-scoped: concurrent writers queue here until the holder commits or
    rolls back, so each event links to the event committed just before it and the chain stays linear.
    If the caller's transaction rolls back, its events vanish with the change they described.
    Inside `audit_batch()` and outside any transaction, the event is only queued: the returned event has
    no id or hash yet.
    """
    if target is not None:
        object_type = object_type or target._meta.label_lower
        object_id = object_id or str(target.pk)
    signed_in = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    event_details = normalise_details(details)
    address = client_address(request)
    if address:
        event_details.setdefault("ip", address)
    fields: dict[str, Any] = {
        "created_at": timezone.now(),
        "actor_id": signed_in.pk if signed_in is not None else None,
        "actor_username": (signed_in.get_username() if signed_in is not None else actor_username)[:150],
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id),
        "outcome": str(outcome),
        "details": event_details,
    }
    pending = _pending_batch.get()
    if pending is not None and not connection.in_atomic_block:
        pending.append((actor, fields))
        return AuditEvent(**fields)
    return _append([(actor, fields)])[0]


def _append(events: list[tuple[Any, dict[str, Any]]]) -> list[AuditEvent]:
    """Write (actor, fields without roles, seq and hashes) events at the chain's head, in this order."""
    if not events:
        return []
    roles_of: dict[Any, list[str]] = {}
    for actor, fields in events:
        key = getattr(actor, "pk", None)
        if key not in roles_of:
            roles_of[key] = actor_roles(actor)  # before taking the chain lock: keep the time it is held short
        fields["actor_roles"] = roles_of[key]
    written = []
    # No savepoint: if an event cannot be written, the caller's whole transaction must fail with it,
    # and two fewer round trips shorten the time the chain lock is held.
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute("SELECT head_seq, head_hash FROM audit_chain_lock_head(%s)", [AUDIT_CHAIN_LOCK_KEY])
        head_seq, head_hash = cursor.fetchone()
        values: list[Any] = []
        for _actor, fields in events:
            fields["seq"] = (head_seq or 0) + 1
            fields["previous_hash"] = head_hash or GENESIS_HASH
            fields["hash"] = event_hash(fields)
            values.extend(json.dumps(fields[name]) if name in _JSON_COLUMNS else fields[name]
                          for name in _INSERT_COLUMNS)  # fmt: skip
            head_seq, head_hash = fields["seq"], fields["hash"]
        # one plain INSERT of every event rather than a Model.save() each: less work while the lock is held
        cursor.execute(_INSERT_SQL.format(rows=", ".join([_INSERT_ROW] * len(events))), values)
        ids = dict(cursor.fetchall())  # seq -> id
        for _actor, fields in events:
            event = AuditEvent(id=ids[fields["seq"]], **fields)
            event._state.adding = False
            event._state.db = connection.alias
            written.append(event)
    _checkpoint_when_crossing(written)
    return written


def _checkpoint_when_crossing(written: list[AuditEvent]) -> None:
    """Queue a checkpoint when these events cross a multiple of AUDIT_CHECKPOINT_EVERY_EVENTS.

    After the commit, so the chain lock is long released and the checkpoint can see the events; and in a
    Celery worker, the process that holds the signing key (web servers need not have it, and one that
    signed without it would create a key of its own). Each multiple is crossed by exactly one committed
    event, so bursts queue one task per N events; the task skips a head that was signed already.
    """
    every = settings.AUDIT_CHECKPOINT_EVERY_EVENTS
    if every <= 0 or not written or written[-1].seq // every == (written[0].seq - 1) // every:
        return
    # robust: a broker that is down must not fail the request whose change is already committed
    transaction.on_commit(_queue_checkpoint, robust=True)


def _queue_checkpoint() -> None:
    from audit.tasks import audit_checkpoint_task

    audit_checkpoint_task.delay()


# ---- signed checkpoints -----------------------------------------------------------------------------
def _signing_key() -> Any:
    if settings.AUDIT_CHECKPOINT_KEY:
        key = load_private_key(settings.AUDIT_CHECKPOINT_KEY.encode(), "AUDIT_CHECKPOINT_KEY")
        public_key_write(key.public_key(), settings.AUDIT_CHECKPOINT_PUBLIC_KEY_PATH)
        return key
    return private_key_ensure(settings.AUDIT_CHECKPOINT_KEY_PATH, settings.AUDIT_CHECKPOINT_PUBLIC_KEY_PATH)


def audit_checkpoint_create(
    *, force: bool = False, directory: Path | None = None, refresh_after_seconds: float | None = None
) -> tuple[Checkpoint | None, Path | None]:
    """Sign the current chain head and write it to the checkpoint store.

    Writes files only (no database row, no audit event: an event would move the head it just signed).
    Skips when the chain is empty or its head was already checkpointed, unless `force`, or unless that
    checkpoint is older than `refresh_after_seconds` (the periodic task: a recent signature is what tells
    audit_verify that nothing after it can have been removed unnoticed, also on a quiet day).
    """
    from audit.selectors import audit_chain_head

    target = directory or settings.AUDIT_CHECKPOINT_DIR
    head_seq, count = audit_chain_head()
    if head_seq == 0:
        return None, None
    previous = latest_checkpoint(target)
    if previous is not None and previous.head_seq == head_seq and not force:
        stale = refresh_after_seconds is not None and _age_seconds(previous) >= refresh_after_seconds
        if not stale:
            return None, None
    head = AuditEvent.objects.filter(seq=head_seq).values("hash", "created_at").get()
    checkpoint = checkpoint_sign(
        private_key=_signing_key(),
        head_seq=head_seq,
        head_hash=head["hash"],
        event_count=count,
        head_created_at=format_time(head["created_at"]),
        created_at=format_time(timezone.now()),
    )
    path = checkpoint_write(checkpoint, target)
    logger.info("audit checkpoint written: event #%s -> %s", head_seq, path)
    return checkpoint, path


def _age_seconds(checkpoint: Checkpoint) -> float:
    try:
        return (timezone.now() - checkpoint_time(checkpoint.created_at)).total_seconds()
    except ValueError:  # an unreadable time: treat it as old, sign again
        return float("inf")


# ---- exports ------------------------------------------------------------------------------------------
EXPORT_PROGRESS_EVERY = 5000  # rows between progress updates of a background export


@transaction.atomic
def audit_export_record(
    *, actor: User, audit_filter: AuditFilter, export_format: str, count: int, up_to_seq: int,
    request: HttpRequest | None = None, export_id: int | None = None,
) -> AuditEvent:  # fmt: skip
    """Record that someone exported (or asked to export) a range of the trail: what, how many, which format."""
    used = audit_filter.to_dict()
    # The free-text filter is typed text (an auditor may search for a card number): only its fingerprint.
    text = used.pop("text", "")
    details: dict[str, Any] = {
        "filter": {**used, **(text_fingerprint(text, name="text") if text else {})},
        "format": export_format,
        "count": count,
        "up_to_seq": up_to_seq,
    }
    if export_id is not None:
        details["export_id"] = export_id
        details["background"] = True
    return audit(actor=actor, action="audit.exported", object_type="audit.auditexport",
                 object_id=export_id or "", details=details, request=request)  # fmt: skip


@transaction.atomic
def audit_export_request(
    *, actor: User, audit_filter: AuditFilter, export_format: str, request: HttpRequest | None = None
) -> AuditExport:
    """Queue a background export of the filtered range, up to the current head of the chain."""
    from audit.selectors import audit_events_matching, audit_head_seq
    from audit.tasks import audit_export_task

    up_to_seq = audit_head_seq()
    count = audit_events_matching(user=actor, audit_filter=audit_filter).filter(seq__lte=up_to_seq).count()
    export = AuditExport(
        requested_by=actor,
        export_format=ExportFormat(export_format),
        filters=audit_filter.to_dict(),
        up_to_seq=up_to_seq,
        total=count,
    )
    export.full_clean()
    export.save()
    audit_export_record(
        actor=actor, audit_filter=audit_filter, export_format=export_format, count=count, up_to_seq=up_to_seq,
        request=request, export_id=export.pk,
    )  # fmt: skip
    export_id = export.pk
    transaction.on_commit(lambda: audit_export_task.delay(export_id))
    return export


def _export_claim(export_id: int) -> AuditExport | None:
    """Mark the export running (also when a requeued attempt resumes it); None when it is finished."""
    with transaction.atomic():
        export = (
            AuditExport.objects.select_for_update(of=("self",))
            .select_related("requested_by")
            .filter(pk=export_id)
            .first()
        )
        if export is None or export.status in {ExportStatus.DONE, ExportStatus.FAILED}:
            return None
        export.status, export.done, export.error = ExportStatus.RUNNING, 0, ""
        export.heartbeat_at = timezone.now()
        export.save(update_fields=["status", "done", "error", "heartbeat_at"])
        return export


def audit_export_heartbeat(*, export_id: int) -> None:
    """The running task's sign of life (see portal.core.jobs)."""
    AuditExport.objects.filter(pk=export_id, status=ExportStatus.RUNNING).update(heartbeat_at=timezone.now())


def audit_export_run(*, export_id: int) -> AuditExport:
    """Write a queued export to its file, reporting progress as it goes.

    Idempotent: a finished export is kept; if two attempts run at once (a requeued one beside an old one that was
    only slow), each writes its own file and the first to finish wins, the other removes its file.
    """
    from audit.filters import apply_filter
    from audit.selectors import audit_export_rows

    export = _export_claim(export_id)
    if export is None:
        return AuditExport.objects.get(pk=export_id)
    directory: Path = settings.AUDIT_EXPORT_DIR
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    file_name = f"audit-export-{export.pk}-{secrets.token_hex(8)}.{export.export_format}"
    temporary = directory / f".{file_name}.part"
    events = AuditEvent.objects.all()
    rows = audit_export_rows(apply_filter(events, AuditFilter.from_dict(export.filters)), up_to_seq=export.up_to_seq)
    written = 0

    def counted(source: Any) -> Any:
        nonlocal written
        for row in source:
            written += 1
            if written % EXPORT_PROGRESS_EVERY == 0:
                AuditExport.objects.filter(pk=export.pk).update(done=written)
            yield row

    try:
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            for piece in render_rows(counted(rows), export.export_format):
                handle.write(piece)
        os.replace(temporary, directory / file_name)
    except Exception as error:
        temporary.unlink(missing_ok=True)
        AuditExport.objects.filter(pk=export.pk).exclude(status=ExportStatus.DONE).update(
            status=ExportStatus.FAILED, error=str(error)[:500]
        )
        raise
    with transaction.atomic():
        current = AuditExport.objects.select_for_update().get(pk=export.pk)
        if current.status == ExportStatus.DONE:  # a concurrent attempt finished first: keep its file
            (directory / file_name).unlink(missing_ok=True)
            return current
        AuditExport.objects.filter(pk=export.pk).update(
            status=ExportStatus.DONE, done=written, total=written, file_name=file_name, finished_at=timezone.now()
        )
        audit(
            actor=export.requested_by,
            action="audit.export_completed",
            object_type="audit.auditexport",
            object_id=export.pk,
            details={"count": written, "format": export.export_format},
        )
    export.refresh_from_db()
    return export


@transaction.atomic
def audit_exports_requeue_stalled(*, now: datetime | None = None) -> list[int]:
    """Queue again the running exports whose task stopped renewing its heartbeat (its worker died).

    Periodic (Celery beat). The new attempt writes the export afresh (the dead attempt's partial file is a
    hidden `.part` file, removed by audit_export_expire). Returns the ids queued again.
    """
    from audit.tasks import audit_export_task

    now = now or timezone.now()
    stale = jobs.stale_before(now)
    stalled = (
        AuditExport.objects.select_for_update(skip_locked=True)
        .filter(status=ExportStatus.RUNNING)
        .filter(Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, created_at__lt=stale))
        .order_by("pk")
    )
    requeued: list[int] = []
    for export in stalled:
        if export.requeues >= jobs.max_requeues():
            export.status, export.error = ExportStatus.FAILED, jobs.ERROR_INTERRUPTED.format(count=export.requeues)
            export.save(update_fields=["status", "error"])
            audit(actor=None, actor_username="system", action="audit.export_failed", object_type="audit.auditexport",
                  object_id=export.pk, outcome="failure", details={"requeues": export.requeues})  # fmt: skip
            continue
        export.requeues += 1
        export.heartbeat_at = now  # a full lease for the new attempt before the next sweep looks again
        export.save(update_fields=["requeues", "heartbeat_at"])
        audit(actor=None, actor_username="system", action="audit.export_requeued", object_type="audit.auditexport",
              object_id=export.pk, details={"requeues": export.requeues})  # fmt: skip
        export_id = export.pk
        transaction.on_commit(lambda export_id=export_id: audit_export_task.delay(export_id))  # type: ignore[misc]
        requeued.append(export.pk)
    return requeued


def audit_export_expire(*, older_than_days: int | None = None) -> int:
    """Delete the files of background exports older than the retention period; keep their rows (and events)."""
    days = settings.AUDIT_EXPORT_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    removed = 0
    for export in AuditExport.objects.filter(created_at__lt=cutoff).exclude(file_name=""):
        with transaction.atomic():
            (settings.AUDIT_EXPORT_DIR / export.file_name).unlink(missing_ok=True)
            AuditExport.objects.filter(pk=export.pk).update(file_name="", status=ExportStatus.FAILED,
                                                            error="expired")  # fmt: skip
            audit(actor=None, actor_username="system", action="audit.export_expired",
                  object_type="audit.auditexport", object_id=export.pk)  # fmt: skip
            removed += 1
    # Partial files of attempts whose worker died (their export was queued again and written anew).
    directory: Path = settings.AUDIT_EXPORT_DIR
    for partial in directory.glob(".audit-export-*.part") if directory.is_dir() else []:
        with contextlib.suppress(FileNotFoundError):
            if partial.stat().st_mtime < cutoff.timestamp():
                partial.unlink()
    return removed


# ---- verifying the chain from the browser ----------------------------------------------------------------
VERIFY_PROGRESS_SECONDS = 0.5  # how often a running verification writes how far it got
ERROR_VERIFICATION_WORKER_LOST = "The worker running this verification stopped; it was not finished."
ERROR_VERIFICATION_FAILED = "The verification could not be completed ({error}); see the worker's log."


@transaction.atomic
def audit_verification_request(*, actor: User, request: HttpRequest | None = None) -> AuditVerification:
    """Queue a walk of the whole chain (what `audit_verify` does) for a worker; one at a time per person.

    Pressing the button again while a run is going returns that run: a walk of millions of events is not
    something to queue twice by accident. A run whose worker stopped beating is marked failed first.
    """
    from audit.selectors import ERROR_VERIFY, VERIFY_PERMISSION, audit_chain_head
    from audit.tasks import audit_verify_task

    if not actor.has_perm(VERIFY_PERMISSION):
        raise PermissionDenied(ERROR_VERIFY)
    unfinished = AuditVerification.objects.select_for_update().filter(
        requested_by=actor.pk, status__in=[ExportStatus.QUEUED, ExportStatus.RUNNING]
    )
    for verification in unfinished:
        beat = verification.heartbeat_at or verification.created_at
        if beat >= jobs.stale_before():
            return verification
        verification.status, verification.error = ExportStatus.FAILED, ERROR_VERIFICATION_WORKER_LOST
        verification.finished_at = timezone.now()
        verification.save(update_fields=["status", "error", "finished_at"])
    head_seq, count = audit_chain_head()
    verification = AuditVerification(requested_by=actor, total=count)
    verification.full_clean()
    verification.save()
    audit(actor=actor, action="audit.verification_requested", object_type="audit.auditverification",
          object_id=verification.pk, details={"events": count, "head_seq": head_seq}, request=request)  # fmt: skip
    verification_id = verification.pk
    transaction.on_commit(lambda: audit_verify_task.delay(verification_id))
    return verification


def _verification_claim(verification_id: int) -> AuditVerification | None:
    with transaction.atomic():
        verification = (
            AuditVerification.objects.select_for_update(of=("self",)).select_related("requested_by")
            .filter(pk=verification_id).first()
        )  # fmt: skip
        if verification is None or verification.status in {ExportStatus.DONE, ExportStatus.FAILED}:
            return None
        verification.status, verification.done, verification.error = ExportStatus.RUNNING, 0, ""
        verification.heartbeat_at = timezone.now()
        verification.save(update_fields=["status", "done", "error", "heartbeat_at"])
        return verification


def audit_verification_run(*, verification_id: int) -> AuditVerification:
    """Walk the chain for a queued verification, writing how far it got, then store and audit the result.

    The walk reads inside one transaction (a server-side cursor), so its progress is written from a thread
    with a connection of its own (portal.core.jobs.Heartbeat), which other requests can see at once.
    """
    from audit.selectors import audit_trail_verify

    verification = _verification_claim(verification_id)
    if verification is None:
        return AuditVerification.objects.get(pk=verification_id)
    walked = [0]

    def beat() -> None:
        AuditVerification.objects.filter(pk=verification_id, status=ExportStatus.RUNNING).update(
            done=walked[0], heartbeat_at=timezone.now()
        )

    def progress(count: int) -> None:
        walked[0] = count

    try:
        with jobs.Heartbeat(beat, interval=VERIFY_PROGRESS_SECONDS):
            report = audit_trail_verify(progress=progress)
    except Exception as error:  # noqa: BLE001 - the person waiting must see that it ended
        logger.exception("audit: verification %s failed", verification_id)
        return _verification_finish(verification, error=ERROR_VERIFICATION_FAILED.format(error=type(error).__name__))
    return _verification_finish(verification, report=report.as_dict())


@transaction.atomic
def _verification_finish(
    verification: AuditVerification, *, report: dict[str, Any] | None = None, error: str = ""
) -> AuditVerification:
    verification.finished_at = timezone.now()
    details: dict[str, Any]
    if report is None:
        verification.status, verification.error = ExportStatus.FAILED, error
        outcome, details = Outcome.ERROR, {"error": error}  # a fixed message and an exception class name
    else:
        verification.status, verification.report = ExportStatus.DONE, report
        verification.done, verification.total = report["events_valid"], report["events_total"]
        outcome = Outcome.SUCCESS if report["verified"] else Outcome.FAILURE
        first_invalid = report["first_invalid_event"]
        details = {
            "intact": report["intact"],
            "verified": report["verified"],
            "events_total": report["events_total"],
            "events_valid": report["events_valid"],
            "head_seq": report["head_seq"],
            "first_invalid_seq": first_invalid["seq"] if first_invalid else None,
            "checkpoints_total": report["checkpoints_total"],
            "checkpoints_valid": report["checkpoints_valid"],
            "events_after_checkpoint": report["events_after_checkpoint"],
            "tail_deleted": report["tail_deleted"],
        }
    verification.save(update_fields=["finished_at", "status", "error", "report", "done", "total"])
    audit(actor=verification.requested_by, action="audit.chain_verified", object_type="audit.auditverification",
          object_id=verification.pk, outcome=outcome, details=details)  # fmt: skip
    return verification
