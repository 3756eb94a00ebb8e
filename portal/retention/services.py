"""Publishing retention policies, placing and lifting legal holds, and the retention run.

The run deletes what is due kind by kind in batches of RETENTION_BATCH_SIZE rows: each batch selects ids only
(ordered, keyset-paginated: memory stays flat however much is due), deletes them in one transaction and writes
one audit event with the counts and the first and last id, never content. A batch and the placing of a hold take
the same advisory lock, and the batch re-applies the hold exclusions under it, so nothing a hold covers is
deleted, however the two interleave.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from audit.privacy import text_fingerprint
from audit.services import audit
from portal.retention.kinds import KIND_BY_KEY, KINDS
from portal.retention.models import HoldSubject, LegalHold, RetentionPolicyVersion, RetentionRun, RunStatus
from portal.retention.selectors import (
    VAULT_KEY_PREFIXES,
    cutoff_for,
    due_queryset,
    hold_description,
    holds_covering,
    policy_current,
    require_hold_manager,
    require_retention_manager,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

HOLD_LOCK_KEY = 0x5245_5445_4E54  # "RETENT": holds and deleting batches, one at a time
RUN_LOCK_KEY = 0x5245_5445_4E55  # one retention run at a time
MAX_DAYS = 36_500
ERROR_REASON_REQUIRED = "Give a reason: it is kept in the audit trail."
ERROR_NOTHING_CHANGED = "The periods are those of the current policy: nothing to publish."
ERROR_UNKNOWN_KIND = "Unknown kind of data: {key}"
ERROR_NOT_A_NUMBER = "{label}: the period must be a whole number of days (or empty: keep for ever)."
ERROR_TOO_SHORT = (
    "{label}: {days} days is shorter than the legal minimum of {minimum} days ({reason}). "
    "Choose {minimum} days or more."
)
ERROR_TOO_LONG = "{label}: at most {maximum} days (or empty: keep for ever)."
ERROR_HOLD_SUBJECT = "Choose what the hold is on: a customer, a staff member or a conversation."
ERROR_HOLD_UNKNOWN = "There is no {subject} #{subject_id}."
ERROR_HOLD_LIFTED = "This hold was lifted already."
ERROR_UNDER_HOLD = "It cannot be deleted while {holds} is in force; a governance officer must lift it first."


def _hold_lock() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [HOLD_LOCK_KEY])


# ---- policies ----------------------------------------------------------------------------------------
def periods_validate(periods: dict[str, Any]) -> dict[str, int | None]:
    """Every kind's period in days, or None (keep); a period under its kind's legal minimum is refused."""
    errors: list[str] = []
    clean: dict[str, int | None] = {}
    for key in periods:
        if key not in KIND_BY_KEY:
            errors.append(ERROR_UNKNOWN_KIND.format(key=key))
    for kind in KINDS:
        value = periods.get(kind.key)
        if value is None or value == "":
            clean[kind.key] = None
            continue
        try:
            days = int(value)
        except (TypeError, ValueError):
            errors.append(ERROR_NOT_A_NUMBER.format(label=kind.label))
            continue
        if days < kind.minimum_days:
            errors.append(ERROR_TOO_SHORT.format(label=kind.label, days=days, minimum=kind.minimum_days,
                                                 reason=kind.minimum_reason))  # fmt: skip
        elif days > MAX_DAYS:
            errors.append(ERROR_TOO_LONG.format(label=kind.label, maximum=MAX_DAYS))
        clean[kind.key] = days
    if errors:
        raise ValidationError(errors)
    return clean


@transaction.atomic
def retention_policy_publish(*, actor: Any, periods: dict[str, Any], reason: str) -> RetentionPolicyVersion:
    require_retention_manager(actor)
    reason = reason.strip()
    if not reason:
        raise ValidationError(ERROR_REASON_REQUIRED)
    clean = periods_validate(periods)
    previous = RetentionPolicyVersion.objects.select_for_update().order_by("-number").first()
    before = previous.periods if previous else {}
    diff = [
        {"kind": kind.key, "before": before.get(kind.key), "after": clean[kind.key]}
        for kind in KINDS
        if before.get(kind.key) != clean[kind.key]
    ]
    if not diff:
        raise ValidationError(ERROR_NOTHING_CHANGED)
    version = RetentionPolicyVersion(number=(previous.number + 1) if previous else 1, periods=clean, author=actor,
                                     reason=reason, diff=diff)  # fmt: skip
    version.full_clean()
    version.save()
    audit(actor=actor, action="retention.policy_published", target=version,
          details={"version": version.number, "previous_version": previous.number if previous else None,
                   "changes": diff, **text_fingerprint(reason, name="reason")})  # fmt: skip
    return version


# ---- legal holds -------------------------------------------------------------------------------------
def _hold_target(subject: str, subject_id: int) -> Any:
    from django.contrib.auth.models import User

    from portal.assistant.models import Conversation
    from portal.customers.models import Customer

    model = {HoldSubject.CUSTOMER: Customer, HoldSubject.USER: User, HoldSubject.CONVERSATION: Conversation}.get(
        subject  # type: ignore[call-overload]
    )
    if model is None:
        raise ValidationError(ERROR_HOLD_SUBJECT)
    target = model.objects.select_for_update().filter(pk=subject_id).first()
    if target is None:
        raise ValidationError(ERROR_HOLD_UNKNOWN.format(subject=HoldSubject(subject).label.lower(),
                                                        subject_id=subject_id))  # fmt: skip
    return target


@transaction.atomic
def legal_hold_place(*, actor: Any, subject: str, subject_id: int, reason: str) -> LegalHold:
    require_hold_manager(actor)
    reason = reason.strip()
    if not reason:
        raise ValidationError(ERROR_REASON_REQUIRED)
    _hold_lock()  # waits for a deleting batch to finish; the next one sees this hold
    _hold_target(subject, subject_id)
    hold = LegalHold(subject=subject, subject_id=subject_id, reason=reason, placed_by=actor)
    hold.full_clean()
    hold.save()
    details = {"subject": subject, "subject_id": subject_id, **text_fingerprint(reason, name="reason")}
    audit(actor=actor, action="retention.hold_placed", target=hold, details=details)
    return hold


@transaction.atomic
def legal_hold_lift(*, actor: Any, hold: LegalHold, reason: str) -> LegalHold:
    require_hold_manager(actor)
    reason = reason.strip()
    if not reason:
        raise ValidationError(ERROR_REASON_REQUIRED)
    hold = LegalHold.objects.select_for_update().get(pk=hold.pk)
    if hold.lifted_at is not None:
        raise ValidationError(ERROR_HOLD_LIFTED)
    hold.lifted_at, hold.lifted_by, hold.lift_reason = timezone.now(), actor, reason
    hold.save(update_fields=["lifted_at", "lifted_by", "lift_reason"])
    audit(actor=actor, action="retention.hold_lifted", target=hold,
          details={"subject": hold.subject, "subject_id": hold.subject_id, "placed_at": hold.placed_at.isoformat(),
                   **text_fingerprint(reason, name="reason")})  # fmt: skip
    return hold


def deletion_refuse_if_held(
    *, customer_id: int | None = None, user_id: int | None = None, conversation_id: int | None = None
) -> None:
    """For every deletion outside retention (by hand, erasure): refuse, naming the holds, when one covers it.

    Call inside the deleting transaction: the hold lock makes a hold placed meanwhile wait for the deletion.
    """
    _hold_lock()
    holds = holds_covering(customer_id=customer_id, user_id=user_id, conversation_id=conversation_id)
    if holds:
        raise ValidationError(ERROR_UNDER_HOLD.format(holds=" and ".join(hold_description(h) for h in holds)))


# ---- deleting ------------------------------------------------------------------------------------------
def vault_keys_of(conversation_ids: list[int]) -> list[str]:
    return [f"{prefix}{pk}" for pk in conversation_ids for prefix in VAULT_KEY_PREFIXES]


def conversations_purge(conversation_ids: list[int], *, actor: User | None = None) -> dict[str, int]:
    """Delete conversations with their messages (and the stored manifests in them), relabels, vaults and the
    knowledge bases of their attached files (through knowledge's service: audited, stored files removed).

    Plain DELETE statements (no model instances in memory); the caller holds the transaction.
    """
    from governance.models import ConversationVault
    from knowledge.services import knowledge_bases_delete
    from portal.assistant.models import CitationOpen, Conversation, Message
    from portal.ml.models import TaskLabel

    attached = Conversation.objects.filter(pk__in=conversation_ids, attachments_base__isnull=False)
    attachment_bases = knowledge_bases_delete(
        actor=actor, knowledge_base_ids=list(attached.values_list("attachments_base_id", flat=True))
    )

    messages, labels = Message._meta.db_table, TaskLabel._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {labels} WHERE message_id IN (SELECT id FROM {messages} WHERE conversation_id = ANY(%s))",
            [conversation_ids],
        )
        relabels = cursor.rowcount
        # the sources opened from those answers (ranker signals) go with them
        cursor.execute(
            f"DELETE FROM {CitationOpen._meta.db_table} WHERE message_id IN "
            f"(SELECT id FROM {messages} WHERE conversation_id = ANY(%s))",
            [conversation_ids],
        )
        source_opens = cursor.rowcount
        # edited_from is SET_NULL: a question elsewhere naming a purged one as its original keeps its own text
        cursor.execute(
            f"UPDATE {messages} SET edited_from_id = NULL WHERE NOT conversation_id = ANY(%s) AND edited_from_id IN "
            f"(SELECT id FROM {messages} WHERE conversation_id = ANY(%s))",
            [conversation_ids, conversation_ids],
        )
        cursor.execute(f"DELETE FROM {messages} WHERE conversation_id = ANY(%s)", [conversation_ids])
        message_count = cursor.rowcount
        cursor.execute(f"DELETE FROM {Conversation._meta.db_table} WHERE id = ANY(%s)", [conversation_ids])
        conversation_count = cursor.rowcount
    vaults, _ = ConversationVault.objects.filter(conversation_key__in=vault_keys_of(conversation_ids)).delete()
    return {"conversations": conversation_count, "messages": message_count, "vaults": vaults, "relabels": relabels,
            "attachment_bases": attachment_bases, "source_opens": source_opens}  # fmt: skip


def _delete_batch(key: str, ids: list[int]) -> dict[str, int]:
    """Delete these rows of kind `key`; returns the counts for the audit event."""
    if key == "conversations":
        return conversations_purge(ids)
    queryset = due_queryset(key, timezone.now()).model.objects.filter(pk__in=ids)
    if key == "uploads":
        files = 0
        for document in queryset.only("pk", "file"):
            if document.file:
                document.file.storage.delete(document.file.name)
                files += 1
        queryset.update(file="")
        return {"originals": files}
    if key == "audit_exports":
        removed = 0
        for export in queryset.only("pk", "file_name"):
            (settings.AUDIT_EXPORT_DIR / export.file_name).unlink(missing_ok=True)
            removed += 1
        queryset.update(file_name="", status="failed", error="expired")
        return {"files": removed}
    count, _ = queryset.delete()
    return {"rows": count}


def _ids_in_batches(key: str, cutoff: datetime, batch_size: int) -> Iterator[list[int]]:
    last = 0
    while True:
        ids = list(
            due_queryset(key, cutoff).filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return
        yield ids
        last = ids[-1]


def _run_kind(run: RetentionRun, key: str, days: int, now: datetime, batch_size: int) -> int:
    cutoff = cutoff_for(days, now)
    deleted = 0
    for candidate_ids in _ids_in_batches(key, cutoff, batch_size):
        with transaction.atomic():
            _hold_lock()
            # again under the lock: a hold placed since the ids were read keeps its rows
            ids = list(due_queryset(key, cutoff).filter(pk__in=candidate_ids).order_by("pk")
                       .values_list("pk", flat=True))  # fmt: skip
            if not ids:
                continue
            counts = _delete_batch(key, ids)
            deleted += len(ids)
            run.batches += 1
            audit(actor=None, actor_username="system", action="retention.deleted", target=run,
                  details={"kind": key, "count": len(ids), "first_id": ids[0], "last_id": ids[-1], **counts,
                           "cutoff": cutoff.isoformat(), "period_days": days,
                           "policy_version": run.policy_version.number if run.policy_version else None})  # fmt: skip
    return deleted


def retention_run(
    *, trigger: str = "schedule", actor: Any = None, now: datetime | None = None, batch_size: int | None = None
) -> RetentionRun | None:
    """Delete everything the current policy says is due. None when another run holds the lock."""
    from portal.accounts.sso import nonces_prune

    batch_size = batch_size or settings.RETENTION_BATCH_SIZE
    now = now or timezone.now()
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [RUN_LOCK_KEY])
        (locked,) = cursor.fetchone()
    if not locked:
        logger.info("retention: another run is in progress")
        return None
    try:
        policy = policy_current()
        run = RetentionRun.objects.create(policy_version=policy, trigger=trigger, started_by=actor, started_at=now)
        try:
            for kind in KINDS:
                days = policy.periods.get(kind.key) if policy else None
                if days is None:
                    continue
                run.deleted[kind.key] = _run_kind(run, kind.key, int(days), now, batch_size)
                held = due_queryset(kind.key, cutoff_for(int(days), now), with_holds=False).count()
                if held:
                    run.held_back[kind.key] = held
                run.save(update_fields=["deleted", "held_back", "batches"])
            nonces_prune()
        except Exception as error:
            run.status, run.error, run.finished_at = RunStatus.FAILED, str(error)[:500], timezone.now()
            run.save(update_fields=["status", "error", "finished_at", "deleted", "batches"])
            audit(actor=None, actor_username="system", action="retention.run_failed", target=run, outcome="failure",
                  details={"deleted": run.deleted, "batches": run.batches, "error": type(error).__name__})  # fmt: skip
            raise
        run.status, run.finished_at = RunStatus.DONE, timezone.now()
        run.save(update_fields=["status", "finished_at"])
        audit(actor=actor, actor_username="" if actor else "system", action="retention.run_finished", target=run,
              details={"trigger": trigger, "deleted": run.deleted, "held_back": run.held_back, "batches": run.batches,
                       "policy_version": policy.number if policy else None,
                       "seconds": round(time.monotonic() - started, 3)})  # fmt: skip
        return run
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [RUN_LOCK_KEY])
