"""What is under a legal hold, what is due for deletion, and the current retention policy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from portal.retention.kinds import KINDS, MEMORY_SCOPE_OF_KIND
from portal.retention.models import HoldSubject, LegalHold, RetentionPolicyVersion, RetentionRun

ERROR_MANAGE_RETENTION = "Retention policies are for governance officers."
ERROR_MANAGE_HOLDS = "Legal holds are for governance officers."
VAULT_KEY_PREFIXES = ("assistant-conversation-", "memory-learning-")  # the vaults a conversation has


def require_retention_manager(user: Any) -> None:
    if not user.has_perm("retention.manage_retention"):
        raise PermissionDenied(ERROR_MANAGE_RETENTION)


def require_hold_manager(user: Any) -> None:
    if not user.has_perm("retention.manage_legalhold"):
        raise PermissionDenied(ERROR_MANAGE_HOLDS)


def policy_current() -> RetentionPolicyVersion | None:
    return RetentionPolicyVersion.objects.order_by("-number").first()


def periods_current() -> dict[str, int | None]:
    policy = policy_current()
    stored = policy.periods if policy else {}
    return {kind.key: stored.get(kind.key) for kind in KINDS}


# ---- legal holds ------------------------------------------------------------------------------------
def holds_active() -> QuerySet[LegalHold]:
    return LegalHold.objects.filter(lifted_at__isnull=True)


def _held(subject: str) -> QuerySet[Any]:
    return holds_active().filter(subject=subject).values("subject_id")


def held_conversations() -> QuerySet[Any]:
    """Conversations under a hold: their own, their owner's or their customer's (a subquery)."""
    from portal.assistant.models import Conversation

    return Conversation.objects.filter(
        Q(pk__in=_held(HoldSubject.CONVERSATION))
        | Q(owner_id__in=_held(HoldSubject.USER))
        | Q(customer_id__in=_held(HoldSubject.CUSTOMER))
    ).values("pk")


def holds_covering(
    *, customer_id: int | None = None, user_id: int | None = None, conversation_id: int | None = None
) -> list[LegalHold]:
    """The holds in force over a customer, a user or a conversation (its own, its owner's, its customer's)."""
    condition = Q(pk__in=[])
    if conversation_id is not None:
        from portal.assistant.models import Conversation

        conversation = Conversation.objects.filter(pk=conversation_id).values("owner_id", "customer_id").first()
        condition |= Q(subject=HoldSubject.CONVERSATION, subject_id=conversation_id)
        if conversation:
            condition |= Q(subject=HoldSubject.USER, subject_id=conversation["owner_id"])
            if conversation["customer_id"]:
                condition |= Q(subject=HoldSubject.CUSTOMER, subject_id=conversation["customer_id"])
    if customer_id is not None:
        condition |= Q(subject=HoldSubject.CUSTOMER, subject_id=customer_id)
    if user_id is not None:
        condition |= Q(subject=HoldSubject.USER, subject_id=user_id)
    return list(holds_active().filter(condition).order_by("pk"))


def hold_description(hold: LegalHold) -> str:
    return f"legal hold #{hold.pk} on {hold.get_subject_display().lower()} #{hold.subject_id} ({hold.reason})"


# ---- what is due --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Due:
    key: str
    label: str
    days: int | None
    cutoff: datetime | None
    deletable: int
    held: int


def due_queryset(key: str, cutoff: datetime, *, with_holds: bool = True) -> QuerySet[Any]:
    """Rows of kind `key` older than `cutoff`; with_holds=True leaves out whatever a legal hold covers."""
    from audit.models import AuditExport
    from governance.models import ConversationVault
    from knowledge.models import Document
    from portal.assistant.models import Conversation
    from portal.customers.models import Interaction
    from portal.memory.models import MemoryItem
    from portal.routing.models import Usage

    queryset: QuerySet[Any]
    if key == "conversations":
        queryset = Conversation.objects.filter(updated_at__lt=cutoff)
        return queryset.exclude(pk__in=held_conversations()) if with_holds else queryset
    if key == "vaults":
        queryset = ConversationVault.objects.filter(updated_at__lt=cutoff)
        if with_holds:
            keys = [f"{prefix}{row['pk']}" for row in held_conversations() for prefix in VAULT_KEY_PREFIXES]
            queryset = queryset.exclude(conversation_key__in=keys)
        return queryset
    if key == "uploads":
        queryset = Document.objects.filter(created_at__lt=cutoff).exclude(file="")
        return queryset.exclude(uploaded_by_id__in=_held(HoldSubject.USER)) if with_holds else queryset
    if key == "usage":
        queryset = Usage.objects.filter(created_at__lt=cutoff)
        return queryset.exclude(user_id__in=_held(HoldSubject.USER)) if with_holds else queryset
    if key in MEMORY_SCOPE_OF_KIND:
        queryset = (
            MemoryItem.objects.filter(scope=MEMORY_SCOPE_OF_KIND[key])
            .alias(age=Coalesce("last_used_at", "updated_at"))
            .filter(age__lt=cutoff)
        )
        if with_holds:
            queryset = (
                queryset.exclude(scope_customer_id__in=_held(HoldSubject.CUSTOMER))
                .exclude(scope_user_id__in=_held(HoldSubject.USER))
                .exclude(source_conversation_id__in=held_conversations())
            )
        return queryset
    if key == "interactions":
        queryset = Interaction.objects.filter(occurred_at__lt=cutoff)
        if with_holds:
            queryset = queryset.exclude(customer_id__in=_held(HoldSubject.CUSTOMER)).exclude(
                staff_id__in=_held(HoldSubject.USER)
            )
        return queryset
    if key == "audit_exports":
        return AuditExport.objects.filter(created_at__lt=cutoff).exclude(file_name="")
    raise KeyError(key)


def cutoff_for(days: int, now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(days=days)


def due_overview(*, user: Any, now: datetime | None = None) -> list[Due]:
    """For each kind: its period, and how many rows the next run deletes and how many a hold keeps."""
    require_retention_manager(user)
    now = now or timezone.now()
    rows = []
    for kind, days in zip(KINDS, periods_current().values(), strict=True):
        if days is None:
            rows.append(Due(kind.key, kind.label, None, None, 0, 0))
            continue
        cutoff = cutoff_for(days, now)
        deletable = due_queryset(kind.key, cutoff).count()
        total = due_queryset(kind.key, cutoff, with_holds=False).count()
        rows.append(Due(kind.key, kind.label, days, cutoff, deletable, total - deletable))
    return rows


def runs_recent(*, user: Any, limit: int = 10) -> list[RetentionRun]:
    require_retention_manager(user)
    return list(RetentionRun.objects.select_related("policy_version", "started_by")[:limit])


def next_run_at() -> datetime | None:
    interval = settings.RETENTION_INTERVAL_SECONDS
    if interval <= 0:
        return None
    last = RetentionRun.objects.filter(trigger="schedule").order_by("-started_at").first()
    return (last.started_at if last else timezone.now()) + timedelta(seconds=interval)
