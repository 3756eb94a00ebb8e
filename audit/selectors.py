from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, Group
from django.contrib.auth.models import User as AuthUser
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import Max, Min, QuerySet
from django.http import Http404

from audit.chain import HASHED_FIELDS, ChainBreak, ChainReport, format_time, verify_events
from audit.checkpoints import Checkpoint, checkpoint_files, load_private_key, load_public_key
from audit.exports import EXPORT_CHUNK_ROWS, EXPORT_COLUMNS
from audit.filters import AuditFilter, apply_filter
from audit.models import AuditEvent, AuditExport, AuditVerification
from portal.core.access import visible_get

VERIFY_CHUNK_SIZE = 20_000
EVENTS_PER_PAGE = 50
REVIEW_PERMISSION = "audit.review_auditevent"
EXPORT_PERMISSION = "audit.export_auditevent"
ERROR_REVIEW = "Reviewing the audit trail is for auditors and administrators."
ERROR_EXPORT = "Exporting the audit trail is for auditors and administrators."
VERIFY_PERMISSION = "audit.verify_auditevent"
ERROR_VERIFY = "Verifying the audit chain is for auditors."

# who asks: a signed-in user, or the anonymous one (then every permission check fails)
User = AuthUser | AnonymousUser


def _require(user: User, permission: str, message: str) -> None:
    if not user.is_authenticated or not user.has_perm(permission):
        raise PermissionDenied(message)


# ---- the chain ------------------------------------------------------------------------------------------
# The time comes out of PostgreSQL already in the chain's text form (what audit.chain.format_time gives),
# which spares a datetime parse and format per event when walking millions of them.
_VERIFY_TIME_SQL = """to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
_VERIFY_COLUMNS = ("id", "hash", *HASHED_FIELDS)
_VERIFY_SQL = "SELECT {columns} FROM {table} ORDER BY seq".format(
    columns=", ".join(
        _VERIFY_TIME_SQL if name == "created_at" else f"{name}::text" if name in ("actor_roles", "details") else name
        for name in _VERIFY_COLUMNS
    ),
    table=AuditEvent._meta.db_table,
)


def audit_events_for_verification() -> Iterator[dict[str, Any]]:
    """Every event in chain order as plain values, through a server-side cursor (constant memory)."""
    loads = json.loads
    with transaction.atomic():  # a server-side (named) cursor lives inside a transaction
        cursor = connection.chunked_cursor()
        try:
            cursor.cursor.itersize = VERIFY_CHUNK_SIZE  # rows per round trip
            cursor.execute(_VERIFY_SQL)
            for row in cursor:
                event = dict(zip(_VERIFY_COLUMNS, row, strict=True))
                event["actor_roles"] = loads(event["actor_roles"])
                event["details"] = loads(event["details"])
                yield event
        finally:
            cursor.close()


def audit_chain_verify() -> ChainReport:
    return verify_events(audit_events_for_verification())


def audit_chain_head() -> tuple[int, int]:
    """(highest seq, number of rows), read in one statement so both describe the same moment."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(seq), 0), COUNT(*) FROM audit_auditevent")
        head_seq, count = cursor.fetchone()
    return int(head_seq), int(count)


@dataclass(frozen=True)
class CheckpointResult:
    file_name: str
    checkpoint: Checkpoint | None
    valid: bool
    problem: str = ""


@dataclass
class TrailReport:
    """The outcome of `audit_verify`, in the spirit of `aws cloudtrail validate-logs`."""

    events_total: int
    head_seq: int
    chain: ChainReport
    first_time: str
    last_time: str
    checkpoints: list[CheckpointResult] = field(default_factory=list)
    checkpoint_dir: str = ""
    public_key: str = ""
    tail_deleted: bool = False
    tail_deleted_note: str = ""
    # The newest events are proven only by a signed checkpoint at or after them; these say how much is not.
    events_after_checkpoint: int = 0
    unchecked_limit: int = 0
    checkpoint_age_seconds: float | None = None
    checkpoint_age_limit_seconds: float | None = None
    not_verified: list[str] = field(default_factory=list)

    @property
    def events_valid(self) -> int:
        return self.chain.checked

    @property
    def first_invalid_event(self) -> ChainBreak | None:
        if self.chain.first_break is not None:
            return self.chain.first_break
        if self.chain.checked != self.events_total:  # rows beyond a gap-free walk, e.g. a duplicate seq
            return ChainBreak(self.chain.head_seq + 1, None, "rows outside the chain")
        return None

    @property
    def checkpoints_valid(self) -> int:
        return sum(1 for result in self.checkpoints if result.valid)

    @property
    def first_invalid_checkpoint(self) -> CheckpointResult | None:
        return next((result for result in self.checkpoints if not result.valid), None)

    @property
    def latest_checkpoint(self) -> Checkpoint | None:
        valid = [result.checkpoint for result in self.checkpoints if result.valid and result.checkpoint]
        return max(valid, key=lambda checkpoint: (checkpoint.head_seq, checkpoint.created_at), default=None)

    @property
    def intact(self) -> bool:
        """No sign of tampering: every event and checkpoint checks out."""
        return self.first_invalid_event is None and self.first_invalid_checkpoint is None and not self.tail_deleted

    @property
    def verified(self) -> bool:
        """Intact, and the newest events are covered closely enough by a signed checkpoint to be proven."""
        return self.intact and not self.not_verified

    def as_dict(self) -> dict[str, Any]:
        brk = self.first_invalid_event
        bad_checkpoint = self.first_invalid_checkpoint
        latest = self.latest_checkpoint
        return {
            "intact": self.intact,
            "events_total": self.events_total,
            "events_valid": self.events_valid,
            "head_seq": self.head_seq,
            "head_hash": self.chain.head_hash if self.chain.intact else None,
            "first_event_time": self.first_time,
            "last_event_time": self.last_time,
            "first_invalid_event": (
                {"seq": brk.seq, "id": brk.event_id, "reason": brk.reason} if brk is not None else None
            ),
            "checkpoint_dir": self.checkpoint_dir,
            "public_key": self.public_key,
            "checkpoints_total": len(self.checkpoints),
            "checkpoints_valid": self.checkpoints_valid,
            "first_invalid_checkpoint": (
                {"file": bad_checkpoint.file_name, "reason": bad_checkpoint.problem} if bad_checkpoint else None
            ),
            "latest_checkpoint": (
                {"head_seq": latest.head_seq, "created_at": latest.created_at} if latest is not None else None
            ),
            "tail_deleted": self.tail_deleted,
            "tail_deleted_note": self.tail_deleted_note,
            "verified": self.verified,
            "events_after_checkpoint": self.events_after_checkpoint,
            "unchecked_limit": self.unchecked_limit,
            "checkpoint_age_seconds": (
                round(self.checkpoint_age_seconds, 1) if self.checkpoint_age_seconds is not None else None
            ),
            "checkpoint_age_limit_seconds": self.checkpoint_age_limit_seconds,
            "not_verified": self.not_verified,
        }


def verification_public_key(public_key_path: Path | None = None) -> tuple[Ed25519PublicKey | None, str]:
    """The key checkpoints are checked with: an explicit file, else the configured public key, else the
    public half of the configured signing key."""
    path = public_key_path or settings.AUDIT_CHECKPOINT_PUBLIC_KEY_PATH
    if path.exists():
        return load_public_key(path), str(path)
    if public_key_path is None:
        if settings.AUDIT_CHECKPOINT_KEY:
            return load_private_key(settings.AUDIT_CHECKPOINT_KEY.encode()).public_key(), "AUDIT_CHECKPOINT_KEY"
        key_path = settings.AUDIT_CHECKPOINT_KEY_PATH
        if key_path.exists():
            return load_private_key(key_path.read_bytes(), str(key_path)).public_key(), str(key_path)
    return None, ""


def audit_trail_verify(
    *,
    checkpoint_dir: Path | None = None,
    public_key_path: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> TrailReport:
    """Walk the chain and hold every signed checkpoint against it; `progress(events walked)` is called for
    every event (keep it cheap: the browser's run reads the count from another thread)."""
    directory = checkpoint_dir or settings.AUDIT_CHECKPOINT_DIR
    public_key, key_origin = verification_public_key(public_key_path)
    files = list(checkpoint_files(directory, public_key))
    wanted = {item.checkpoint.head_seq for item in files if item.checkpoint is not None}
    seen_hashes: dict[int, str] = {}

    def observed(events: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for walked, event in enumerate(events, start=1):
            if event["seq"] in wanted:
                seen_hashes[event["seq"]] = event["hash"]
            if progress is not None:
                progress(walked)
            yield event

    head_seq, count = audit_chain_head()
    span = AuditEvent.objects.aggregate(first=Min("created_at"), last=Max("created_at"))
    chain = verify_events(observed(audit_events_for_verification()))
    report = TrailReport(
        events_total=count,
        head_seq=head_seq,
        chain=chain,
        first_time=format_time(span["first"]) if span["first"] else "",
        last_time=format_time(span["last"]) if span["last"] else "",
        checkpoint_dir=str(directory),
        public_key=key_origin,
    )
    walked_to = chain.head_seq  # the last event that verified
    for item in files:
        checkpoint = item.checkpoint
        if checkpoint is None:
            report.checkpoints.append(CheckpointResult(item.name, None, False, item.problem))
            continue
        problem = ""
        if checkpoint.head_seq > head_seq:
            problem = (
                f"names event #{checkpoint.head_seq} ({checkpoint.event_count} events) but the chain ends at "
                f"#{head_seq}: events were deleted from the end"
            )
            report.tail_deleted = True
            report.tail_deleted_note = problem
        elif checkpoint.head_seq > walked_to:
            problem = f"cannot be confirmed: the chain is broken before event #{checkpoint.head_seq}"
        elif seen_hashes.get(checkpoint.head_seq) != checkpoint.head_hash:
            problem = f"event #{checkpoint.head_seq} no longer has the signed hash: the chain up to it was rewritten"
        report.checkpoints.append(CheckpointResult(item.name, checkpoint, not problem, problem))
    _hold_the_tail_to_the_limits(report)
    return report


NOT_VERIFIED_COUNT = "{count} events newer than the newest checkpoint (limit {limit}, AUDIT_UNCHECKPOINTED_MAX)"
NOT_VERIFIED_NO_CHECKPOINT = "{count} events and no valid checkpoint (limit {limit}, AUDIT_UNCHECKPOINTED_MAX)"
NOT_VERIFIED_AGE = (
    "the newest checkpoint was signed {age} ago, more than twice AUDIT_CHECKPOINT_INTERVAL_SECONDS ({limit}): "
    "events after it, or removed after it, cannot be told from a rewrite"
)


def duration_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _hold_the_tail_to_the_limits(report: TrailReport) -> None:
    """Not proven is not tampered: say which of the newest events no signed checkpoint vouches for.

    Someone who can write to the database (a superuser, or anyone while the triggers are off) can remove
    the events after the newest checkpoint and append others with correct hashes; nothing in the chain shows
    it. Two bounds make that window small and visible: how many events may follow the newest checkpoint,
    and how old that checkpoint may be while checkpoints are written periodically (the periodic task signs
    even an unchanged head again, so a quiet day does not trip it).
    """
    from django.utils import timezone

    from audit.checkpoints import checkpoint_time

    report.unchecked_limit = settings.AUDIT_UNCHECKPOINTED_MAX
    interval = settings.AUDIT_CHECKPOINT_INTERVAL_SECONDS
    report.checkpoint_age_limit_seconds = 2.0 * interval if interval > 0 else None
    valid = [result.checkpoint for result in report.checkpoints if result.valid and result.checkpoint]
    newest_head = report.latest_checkpoint
    if newest_head is None:
        report.events_after_checkpoint = report.events_total
        if report.events_total > report.unchecked_limit:
            report.not_verified.append(NOT_VERIFIED_NO_CHECKPOINT.format(count=report.events_total,
                                                                         limit=report.unchecked_limit))  # fmt: skip
        return
    report.events_after_checkpoint = max(0, report.head_seq - newest_head.head_seq)
    if report.events_after_checkpoint > report.unchecked_limit:
        report.not_verified.append(
            NOT_VERIFIED_COUNT.format(count=report.events_after_checkpoint, limit=report.unchecked_limit)
        )
    newest_signed = max(checkpoint_time(checkpoint.created_at) for checkpoint in valid)
    report.checkpoint_age_seconds = (timezone.now() - newest_signed).total_seconds()
    limit = report.checkpoint_age_limit_seconds
    if limit is not None and report.checkpoint_age_seconds > limit:
        report.not_verified.append(NOT_VERIFIED_AGE.format(age=duration_text(report.checkpoint_age_seconds),
                                                           limit=duration_text(limit)))  # fmt: skip


# ---- review pages ----------------------------------------------------------------------------------------
def require_export(*, user: User) -> None:
    _require(user, EXPORT_PERMISSION, ERROR_EXPORT)


def role_names() -> list[str]:
    """The roles an auditor may filter by, in governance's order. A role is a group with a governance role
    row; it is read through the group (audit sits below governance and does not import it)."""
    groups = Group.objects.filter(role__isnull=False).order_by("role__position")
    return list(groups.values_list("name", flat=True))


def audit_events_matching(*, user: User, audit_filter: AuditFilter) -> QuerySet[AuditEvent]:
    _require(user, REVIEW_PERMISSION, ERROR_REVIEW)
    return apply_filter(AuditEvent.objects.all(), audit_filter)


@dataclass(frozen=True)
class EventPage:
    events: list[AuditEvent]
    newer_than: int | None  # seq for a "newer" link (after=...), None when this is the newest page
    older_than: int | None  # seq for an "older" link (before=...), None when this is the oldest page


def audit_event_page(
    *, user: User, audit_filter: AuditFilter, before: int | None = None, after: int | None = None,
    size: int = EVENTS_PER_PAGE,
) -> EventPage:  # fmt: skip
    """One page, newest first, found by position in the chain (keyset paging: no OFFSET, no COUNT)."""
    events = audit_events_matching(user=user, audit_filter=audit_filter)
    if after is not None:
        rows = list(events.filter(seq__gt=after).order_by("seq")[: size + 1])
        has_newer = len(rows) > size
        rows = list(reversed(rows[:size]))
        has_older = bool(rows) and events.filter(seq__lt=rows[-1].seq).exists()
    else:
        page = events.filter(seq__lt=before) if before is not None else events
        rows = list(page.order_by("-seq")[: size + 1])
        has_older = len(rows) > size
        rows = rows[:size]
        has_newer = before is not None and bool(rows) and events.filter(seq__gt=rows[0].seq).exists()
    return EventPage(
        events=rows,
        newer_than=rows[0].seq if rows and has_newer else None,
        older_than=rows[-1].seq if rows and has_older else None,
    )


def audit_event_get(*, user: User, seq: int) -> AuditEvent:
    _require(user, REVIEW_PERMISSION, ERROR_REVIEW)
    event = AuditEvent.objects.filter(seq=seq).first()
    if event is None:
        raise Http404("No such audit event.")
    return event


def audit_event_neighbours(*, event: AuditEvent) -> tuple[int | None, int | None]:
    previous = AuditEvent.objects.filter(seq=event.seq - 1).values_list("seq", flat=True).first()
    following = AuditEvent.objects.filter(seq=event.seq + 1).values_list("seq", flat=True).first()
    return previous, following


def audit_head_seq() -> int:
    return int(AuditEvent.objects.aggregate(head=Max("seq"))["head"] or 0)


def audit_export_rows(events: QuerySet[AuditEvent], *, up_to_seq: int) -> Iterator[tuple[Any, ...]]:
    """The rows of an export in chain order, through a server-side cursor (constant memory)."""
    return (
        events.filter(seq__lte=up_to_seq)
        .order_by("seq")
        .values_list(*EXPORT_COLUMNS)
        .iterator(chunk_size=EXPORT_CHUNK_ROWS)
    )


def audit_exports_for_user(*, user: User) -> QuerySet[AuditExport]:
    _require(user, EXPORT_PERMISSION, ERROR_EXPORT)
    return AuditExport.objects.filter(requested_by=user.pk)


def audit_export_get(*, user: User, export_id: int) -> AuditExport:
    """Exports are private to whoever asked for them: anyone else gets a 404."""
    return visible_get(audit_exports_for_user(user=user), export_id, "No such export.")


# ---- verification runs asked for from the browser --------------------------------------------------------
def audit_verifications_for_user(*, user: User) -> QuerySet[AuditVerification]:
    """The runs this user asked for (each person sees their own, like exports); 403 without the permission."""
    _require(user, VERIFY_PERMISSION, ERROR_VERIFY)
    return AuditVerification.objects.filter(requested_by=user.pk)


def audit_verification_get(*, user: User, verification_id: int) -> AuditVerification:
    return visible_get(audit_verifications_for_user(user=user), verification_id, "No such verification.")
