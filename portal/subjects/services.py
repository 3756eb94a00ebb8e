"""Data-subject requests: asking, the background run (access bundle or erasure), downloading and expiring bundles.

Every step is audited with ids and counts only: `subjects.requested` (or `subjects.request_refused`),
`subjects.started`, one `subjects.phase_completed` per phase with its counts, then `subjects.completed` or
`subjects.failed`. The reason a person typed is kept on the request (shown to them) and only as a keyed hash in
the trail (audit/privacy.py).

Erasure of a customer, in this order, each phase in a transaction of its own:
1. delete   the interactions, the memories scoped to them (each with the memory app's tombstone event), the
            predictions, earlier access bundles, and the conversations about them that no legal hold keeps
            (messages, relabels, vaults: retention's purge);
2. scrub    replace their values by the tombstone `[erased]` in every other text column of every table (the
            conversations kept under another hold, other customers' notes, organisation memories, vault
            entries...), except the audit trail (append-only, ids only) and the knowledge bases (step 3);
3. review   list the knowledge-base documents whose chunks or title mention them, for an officer;
4. dictionary  only now delete the record itself, which takes them out of the known-entity dictionary: until
            their values are gone everywhere else, the detector must still find them in prompts;
5. verify   search every table and the decrypted vaults for the values (still in this process's memory only)
            and store the rows found per table; 0 everywhere is the target.
A legal hold on the customer refuses the request (when asked and again when it runs), naming the hold.
"""

from __future__ import annotations

import logging
import os
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from audit.privacy import text_fingerprint
from audit.services import audit
from portal.core import jobs
from portal.subjects.collect import bundle_write, sections_for
from portal.subjects.models import RequestKind, RequestStatus, SubjectRequest, SubjectType
from portal.subjects.scan import count_rows_with_values, documents_mentioning, scrub_values
from portal.subjects.selectors import customer_values, require_may_request, subject_exists

logger = logging.getLogger(__name__)

ERROR_NO_SUBJECT = "There is no {subject} #{subject_id}."
ERROR_ERASURE_STAFF = (
    "Erasure is offered for customers. A staff member's account is closed by an administrator (deactivate it); "
    "their conversations and memories then follow the retention policy."
)
ERROR_UNDER_HOLD = "This customer cannot be erased while {holds} is in force; a governance officer must lift it first."
ERROR_INTERRUPTED = (
    "The worker stopped during the {phase} phase; the phases listed as done were done, nothing after them. "
    "Ask again to finish it."
)
ERROR_GONE = "The subject no longer exists (erased already?): nothing to do."
ERROR_VALUES_REMAIN = (
    "Their values are still in {tables} after the scrub: the record is kept, so the known-entity dictionary still "
    "finds them in prompts, until those rows are dealt with."
)
ERASURE_PHASES = ("delete", "scrub", "review", "dictionary", "verify")


def _details(subject_request: SubjectRequest, **extra: Any) -> dict[str, Any]:
    return {
        "request_id": subject_request.pk,
        "kind": subject_request.kind,
        "subject_type": subject_request.subject_type,
        "subject_id": subject_request.subject_id,
        **extra,
    }


def _held_message(customer_id: int) -> str | None:
    from portal.retention.selectors import hold_description, holds_covering

    holds = holds_covering(customer_id=customer_id)
    if not holds:
        return None
    return ERROR_UNDER_HOLD.format(holds=" and ".join(hold_description(hold) for hold in holds))


# ---- asking ------------------------------------------------------------------------------------------
def subject_request_create(
    *, actor: Any, kind: str, subject_type: str, subject_id: int, reason: str = "", request: HttpRequest | None = None
) -> SubjectRequest:
    """Queue an access or erasure request. Refused (ValidationError, audited) for an unknown subject, the erasure
    of a staff member, or a customer under legal hold (the message names the hold)."""
    require_may_request(actor, kind=kind, subject_type=subject_type, subject_id=subject_id)
    refusal = None
    if not subject_exists(subject_type, subject_id):
        refusal = ERROR_NO_SUBJECT.format(subject=SubjectType(subject_type).label.lower(), subject_id=subject_id)
    elif kind == RequestKind.ERASURE and subject_type != SubjectType.CUSTOMER:
        refusal = ERROR_ERASURE_STAFF
    elif kind == RequestKind.ERASURE:
        refusal = _held_message(subject_id)
    if refusal is not None:
        from portal.retention.selectors import holds_covering

        hold_ids = [h.pk for h in holds_covering(customer_id=subject_id)] if kind == RequestKind.ERASURE else []
        with transaction.atomic():
            audit(actor=actor, action="subjects.request_refused", object_type="subjects.subjectrequest",
                  outcome="failure", request=request,
                  details={"kind": kind, "subject_type": subject_type, "subject_id": subject_id,
                           "legal_holds": hold_ids})  # fmt: skip
        raise ValidationError(refusal)
    return _request_queue(actor=actor, kind=kind, subject_type=subject_type, subject_id=subject_id, reason=reason,
                          request=request)  # fmt: skip


@transaction.atomic
def _request_queue(
    *, actor: Any, kind: str, subject_type: str, subject_id: int, reason: str, request: HttpRequest | None
) -> SubjectRequest:
    from portal.subjects.tasks import subject_request_task

    subject_request = SubjectRequest(kind=kind, subject_type=subject_type, subject_id=subject_id,
                                     requested_by=actor, reason=reason.strip())  # fmt: skip
    subject_request.full_clean()
    subject_request.save()
    audit(actor=actor, action="subjects.requested", target=subject_request, request=request,
          details=_details(subject_request, **text_fingerprint(subject_request.reason, name="reason")))  # fmt: skip
    request_id = subject_request.pk
    transaction.on_commit(lambda: subject_request_task.delay(request_id))
    return subject_request


# ---- running -----------------------------------------------------------------------------------------
def _claim(request_id: int) -> SubjectRequest | None:
    with transaction.atomic():
        requests = SubjectRequest.objects.select_for_update(of=("self",)).select_related("requested_by")
        found = requests.filter(pk=request_id).first()
        if found is None or found.status != RequestStatus.QUEUED:
            return None  # finished, or an attempt is (or was) running: an erasure is never run twice
        found.status, found.started_at = RequestStatus.RUNNING, timezone.now()
        found.save(update_fields=["status", "started_at"])
        audit(actor=found.requested_by, action="subjects.started", target=found, details=_details(found))
        return found


def _progress(subject_request: SubjectRequest, phase: str, done: int, total: int) -> None:
    subject_request.phase, subject_request.done, subject_request.total = phase, done, total
    SubjectRequest.objects.filter(pk=subject_request.pk).update(phase=phase, done=done, total=total)


def _phase_done(subject_request: SubjectRequest, phase: str, counts: dict[str, Any]) -> None:
    """Inside the phase's transaction: keep its counts on the request and audit them."""
    subject_request.counts = [*subject_request.counts, {"phase": phase, "counts": counts}]
    SubjectRequest.objects.filter(pk=subject_request.pk).update(counts=subject_request.counts)
    audit(actor=subject_request.requested_by, action="subjects.phase_completed", target=subject_request,
          details=_details(subject_request, phase=phase, counts=counts))  # fmt: skip


def _fail(subject_request: SubjectRequest, message: str, error_class: str) -> None:
    SubjectRequest.objects.filter(pk=subject_request.pk).update(
        status=RequestStatus.FAILED, error=message[:500], finished_at=timezone.now()
    )
    audit(actor=subject_request.requested_by, action="subjects.failed", target=subject_request, outcome="failure",
          details=_details(subject_request, phase=subject_request.phase, error=error_class,
                           counts=subject_request.counts))  # fmt: skip


def subject_request_run(*, request_id: int) -> SubjectRequest:
    """Run a queued request (the Celery task's body). Idempotent: a request already started is left alone."""
    subject_request = _claim(request_id)
    if subject_request is None:
        return SubjectRequest.objects.get(pk=request_id)
    try:
        with jobs.Heartbeat(lambda: subject_request_heartbeat(request_id=request_id)):
            if subject_request.kind == RequestKind.ACCESS:
                _run_access(subject_request)
            else:
                _run_erasure(subject_request)
    except ValidationError as refused:
        _fail(subject_request, " ".join(refused.messages), "ValidationError")
    except Exception as error:
        # the message of a database error can quote a row: the trail and the screen get the class only
        logger.exception("subjects: request %s failed", subject_request.pk)
        _fail(subject_request, f"The request failed ({type(error).__name__}); see the worker's log.",
              type(error).__name__)  # fmt: skip
        raise
    subject_request.refresh_from_db()
    return subject_request


def subject_request_heartbeat(*, request_id: int) -> None:
    SubjectRequest.objects.filter(pk=request_id, status=RequestStatus.RUNNING).update(heartbeat_at=timezone.now())


def subject_requests_fail_stalled(*, now: datetime | None = None) -> int:
    """Periodic (Celery beat): a running request whose worker died (no heartbeat for JOBS_STALE_AFTER_SECONDS)
    ends failed, audited, with what its completed phases did kept, instead of showing "running" for ever. It is
    not run again by itself: an erasure half done is for its requester to look at and to ask again (every phase
    is safe to repeat: what is already gone counts 0)."""
    stale = jobs.stale_before(now)
    failed = 0
    with transaction.atomic():
        stalled = (
            SubjectRequest.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("requested_by")
            .filter(status=RequestStatus.RUNNING)
            .filter(Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, started_at__lt=stale))
        )
        for subject_request in stalled:
            phase = subject_request.phase or "first"
            _fail(subject_request, ERROR_INTERRUPTED.format(phase=phase), "WorkerLost")
            failed += 1
    return failed


def _complete(subject_request: SubjectRequest, **fields: Any) -> None:
    fields = {"status": RequestStatus.DONE, "finished_at": timezone.now(), "phase": "", **fields}
    SubjectRequest.objects.filter(pk=subject_request.pk).update(**fields)
    for name, value in fields.items():
        setattr(subject_request, name, value)
    summary = {key: fields[key] for key in ("values_found", "file_size") if key in fields}
    audit(actor=subject_request.requested_by, action="subjects.completed", target=subject_request,
          details=_details(subject_request, counts=subject_request.counts, **summary))  # fmt: skip


# ---- access --------------------------------------------------------------------------------------------
def bundle_directory() -> Path:
    directory: Path = settings.SUBJECT_BUNDLE_DIR
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory


def _run_access(subject_request: SubjectRequest) -> None:
    pk = subject_request.subject_id
    if not subject_exists(subject_request.subject_type, pk):
        raise ValidationError(ERROR_GONE)
    sections = sections_for(subject_request.subject_type)
    collected: dict[str, list[dict[str, Any]]] = {}
    for number, section in enumerate(sections):
        _progress(subject_request, section.name, number, len(sections) + 1)
        collected[section.name] = list(section.rows(pk))
    _progress(subject_request, "bundle", len(sections), len(sections) + 1)
    directory = bundle_directory()
    file_name = f"subject-{subject_request.pk}-{secrets.token_hex(8)}.zip"
    temporary = directory / f".{file_name}.part"
    header = {"request_id": subject_request.pk, "subject_type": subject_request.subject_type, "subject_id": pk,
              "generated_at": timezone.now().isoformat()}  # fmt: skip
    try:
        bundle_write(temporary, header=header, sections=collected)
        os.replace(temporary, directory / file_name)
    finally:
        temporary.unlink(missing_ok=True)
    counts = {name: len(rows) for name, rows in collected.items()}
    with transaction.atomic():
        _phase_done(subject_request, "collect", counts)
        _complete(subject_request, file_name=file_name, file_size=(directory / file_name).stat().st_size,
                  expires_at=timezone.now() + timedelta(hours=settings.SUBJECT_BUNDLE_RETENTION_HOURS),
                  done=len(sections) + 1, total=len(sections) + 1)  # fmt: skip


# ---- erasure -------------------------------------------------------------------------------------------
def _tables_of(*labels: str) -> set[str]:
    from django.apps import apps

    return {model._meta.db_table for label in labels
            for model in apps.get_app_config(label).get_models(include_auto_created=True)}  # fmt: skip


def scrub_skipped_tables() -> set[str]:
    """Tables the scrub leaves alone: the audit trail (append-only, and it holds ids only) and the knowledge bases
    (their documents are reported for an officer's review, not rewritten under the search index)."""
    return _tables_of("audit", "knowledge")


def _delete_owned(subject_request: SubjectRequest) -> dict[str, Any]:
    from portal.assistant.models import Conversation
    from portal.customers.models import Customer, Interaction
    from portal.memory.services import memories_forget_for_customer
    from portal.ml.models import CustomerPrediction
    from portal.retention.selectors import held_conversations
    from portal.retention.services import conversations_purge, deletion_refuse_if_held

    pk = subject_request.subject_id
    deletion_refuse_if_held(customer_id=pk)  # under the hold lock: a hold placed meanwhile waits for us
    customer = Customer.objects.select_for_update().get(pk=pk)
    about = Conversation.objects.filter(customer_id=pk)
    kept = list(about.filter(pk__in=held_conversations()).values_list("pk", flat=True))
    purge = list(about.exclude(pk__in=kept).order_by("pk").values_list("pk", flat=True))
    purged = conversations_purge(purge) if purge else {}
    interactions, _ = Interaction.objects.filter(customer_id=pk).delete()
    predictions, _ = CustomerPrediction.objects.filter(customer_id=pk).delete()
    memories = memories_forget_for_customer(actor=subject_request.requested_by, customer=customer)  # type: ignore[arg-type]
    bundles = _bundles_of_subject_delete(subject_request)
    return {"interactions": interactions, "memories": memories, "predictions": predictions,
            "conversations": purged.get("conversations", 0), "messages": purged.get("messages", 0),
            "vaults": purged.get("vaults", 0), "conversations_kept_under_hold": len(kept),
            "kept_conversation_ids": kept, "access_bundles": bundles}  # fmt: skip


def _bundles_of_subject_delete(subject_request: SubjectRequest) -> int:
    earlier = SubjectRequest.objects.filter(subject_type=subject_request.subject_type,
                                            subject_id=subject_request.subject_id).exclude(file_name="")  # fmt: skip
    removed = 0
    for other in earlier:
        (settings.SUBJECT_BUNDLE_DIR / other.file_name).unlink(missing_ok=True)
        removed += 1
    earlier.update(file_name="", file_size=0, expires_at=None)
    return removed


def _run_erasure(subject_request: SubjectRequest) -> None:
    from portal.customers.entities import known_entities_invalidate_on_commit
    from portal.customers.models import Customer

    pk = subject_request.subject_id
    if not subject_exists(SubjectType.CUSTOMER, pk):
        raise ValidationError(ERROR_GONE)
    held = _held_message(pk)
    if held:
        raise ValidationError(held)
    values = customer_values(pk)  # in this process's memory only, never stored
    own_record = {Customer._meta.db_table: [pk]}
    steps = len(ERASURE_PHASES)
    _progress(subject_request, "delete", 0, steps)
    with transaction.atomic():
        before = count_rows_with_values(values, exclude=own_record)
        counts = _delete_owned(subject_request)
        counts["rows_with_values_before"] = {table: n for table, n in before.items() if n}
        _phase_done(subject_request, "delete", counts)
    _progress(subject_request, "scrub", 1, steps)
    with transaction.atomic():
        _phase_done(
            subject_request,
            "scrub",
            {"rows_changed": scrub_values(values, skip_tables=scrub_skipped_tables(), exclude=own_record)},
        )
    _progress(subject_request, "review", 2, steps)
    documents = documents_mentioning(values)
    with transaction.atomic():
        SubjectRequest.objects.filter(pk=subject_request.pk).update(documents_for_review=documents)
        _phase_done(
            subject_request,
            "review",
            {"documents": len(documents), "document_ids": [d["document_id"] for d in documents]},
        )
    _progress(subject_request, "dictionary", 3, steps)
    # Out of the dictionary only once the values are gone everywhere the scrub reaches (knowledge documents are
    # the officer's review, above; the append-only trail cannot change and is reported by the verification).
    remaining = count_rows_with_values(values, exclude=own_record)
    outside = sorted(table for table, n in remaining.items() if n and table not in scrub_skipped_tables())
    if outside:
        SubjectRequest.objects.filter(pk=subject_request.pk).update(
            verification=verification_summary(remaining), values_found=sum(remaining.values())
        )
        raise ValidationError(ERROR_VALUES_REMAIN.format(tables=", ".join(outside)))
    with transaction.atomic():
        deleted, _ = Customer.objects.filter(pk=pk).delete()
        known_entities_invalidate_on_commit()
        _phase_done(subject_request, "dictionary", {"records_deleted": deleted})
    _progress(subject_request, "verify", 4, steps)
    found = count_rows_with_values(values)
    verification = verification_summary(found)
    with transaction.atomic():
        _phase_done(
            subject_request,
            "verify",
            {"values_found": verification["values_found"], "tables_checked": verification["tables_checked"]},
        )
        _complete(subject_request, verification=verification, values_found=verification["values_found"],
                  documents_for_review=documents, done=steps, total=steps)  # fmt: skip


def verification_summary(found: dict[str, int]) -> dict[str, Any]:
    return {"tables": found, "tables_checked": len(found), "values_found": sum(found.values()),
            "tables_with_values": sorted(table for table, n in found.items() if n),
            "checked_at": timezone.now().isoformat()}  # fmt: skip


# ---- bundles: download, delete, expire -----------------------------------------------------------------
def subject_bundle_path(subject_request: SubjectRequest) -> Path | None:
    if not subject_request.downloadable:
        return None
    path: Path = settings.SUBJECT_BUNDLE_DIR / subject_request.file_name
    return path if path.is_file() else None


@transaction.atomic
def subject_bundle_downloaded(
    *, actor: Any, subject_request: SubjectRequest, request: HttpRequest | None = None
) -> None:
    """Audit a download (the view found the request through the requester-only selector)."""
    audit(actor=actor, action="subjects.bundle_downloaded", target=subject_request, request=request,
          details=_details(subject_request, file_size=subject_request.file_size))  # fmt: skip


@transaction.atomic
def subject_bundle_delete(*, actor: Any, subject_request: SubjectRequest, request: HttpRequest | None = None) -> None:
    if subject_request.file_name:
        (settings.SUBJECT_BUNDLE_DIR / subject_request.file_name).unlink(missing_ok=True)
    SubjectRequest.objects.filter(pk=subject_request.pk).update(file_name="", file_size=0, expires_at=None)
    subject_request.file_name, subject_request.file_size, subject_request.expires_at = "", 0, None
    audit(actor=actor, action="subjects.bundle_deleted", target=subject_request, request=request,
          details=_details(subject_request, why="requester"))  # fmt: skip


def subject_bundles_expire(*, now: datetime | None = None) -> int:
    """Delete the bundles past their expiry (Celery beat, hourly), one audit event each."""
    now = now or timezone.now()
    expired = 0
    for subject_request in SubjectRequest.objects.filter(expires_at__lt=now).exclude(file_name=""):
        with transaction.atomic():
            (settings.SUBJECT_BUNDLE_DIR / subject_request.file_name).unlink(missing_ok=True)
            SubjectRequest.objects.filter(pk=subject_request.pk).update(file_name="", file_size=0, expires_at=None)
            audit(actor=None, actor_username="system", action="subjects.bundle_deleted", target=subject_request,
                  details=_details(subject_request, why="expired"))  # fmt: skip
        expired += 1
    return expired
