"""Changes to the AI memory. Audit events describe memories without their text, so forgetting one leaves
no copy of it in the trail (the trail cannot be edited afterwards)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from pgvector.django import CosineDistance

from audit.services import audit
from portal.assistant.selectors import answer_get
from portal.core.parameters import parameter_value
from portal.core.types import UserLike
from portal.customers.selectors import customers_visible_to
from portal.memory import embedding
from portal.memory.models import Kind, MemoryItem, Scope, Sensitivity, Source, Status
from portal.memory.selectors import ERROR_ADD_MEMORY, ERROR_FORGET, ERROR_REVIEW, can_forget, can_review, is_reviewer

if TYPE_CHECKING:
    from portal.customers.models import Customer

logger = logging.getLogger(__name__)

ERROR_SCOPE_ROLE = "Choose one of your own roles for a role memory."
ERROR_SCOPE_CUSTOMER = "Choose a customer you may see for a customer memory."
ERROR_SCOPE_USER = "Personal memories belong to the person who adds them."
ERROR_EMPTY_TEXT = "A memory needs some text."
ERROR_NOT_PROPOSED = "Only proposed memories can be approved or rejected."

SYSTEM_ACTOR = "system:memory-learning"

_NEGATIONS = frozenset(
    {
        "not",
        "no",
        "never",
        "none",
        "nobody",
        "nothing",
        "neither",
        "nor",
        "cannot",
        "can't",
        "won't",
        "don't",
        "doesn't",
        "didn't",
        "isn't",
        "aren't",
        "wasn't",
        "weren't",
        "shouldn't",
        "mustn't",
        "without",
    }
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_TOKEN = re.compile(r"[\w']+", re.UNICODE)


# ---- duplicates and contradictions ------------------------------------------------------------------
def _has_negation(text: str) -> bool:
    words = [word.lower() for word in _TOKEN.findall(text)]
    return any(word in _NEGATIONS or word.endswith("n't") for word in words)


def _numbers(text: str) -> set[str]:
    return {number.replace(",", ".") for number in _NUMBER.findall(text)}


def contradiction_reason(new_text: str, old_text: str) -> str:
    """Why two similar statements may disagree ("" when no simple signal says so)."""
    if _has_negation(new_text) != _has_negation(old_text):
        return "one says the opposite of the other (negation)"
    new_numbers, old_numbers = _numbers(new_text), _numbers(old_text)
    if new_numbers and old_numbers and new_numbers != old_numbers:
        return "the numbers differ"
    return ""


def _normalised(text: str) -> str:
    return " ".join(_TOKEN.findall(text.lower()))


def _same_audience(memory: MemoryItem) -> Q:
    """Memories that reach the same people: same scope and target, or the whole organisation."""
    same = Q(scope=memory.scope, scope_role_id=memory.scope_role_id, scope_customer_id=memory.scope_customer_id)
    same &= Q(scope_user_id=memory.scope_user_id)
    return same | Q(scope=Scope.ORGANISATION)


def memory_flags(*, memory: MemoryItem) -> list[dict[str, Any]]:
    """Existing (approved or proposed) memories this one repeats or contradicts, most similar first."""
    if memory.embedding is None:
        return []
    contradiction = parameter_value("memory_contradiction_similarity")
    duplicate = parameter_value("memory_duplicate_similarity")
    lowest = min(contradiction, duplicate)
    neighbours = (
        MemoryItem.objects.filter(status__in=[Status.APPROVED, Status.PROPOSED])
        .filter(_same_audience(memory))
        .exclude(pk=memory.pk)
        .exclude(embedding=None)
        .annotate(distance=CosineDistance("embedding", memory.embedding))
        .filter(distance__lte=1 - lowest)
        .order_by("distance")
        .values_list("pk", "text", "distance")[:5]
    )
    flags = []
    for pk, text, distance in neighbours:
        similarity = round(1 - float(distance), 4)
        reason = contradiction_reason(memory.text, text)
        if reason and similarity >= contradiction:
            flags.append({"memory_id": pk, "relation": "contradiction", "score": similarity, "reason": reason})
        elif similarity >= duplicate or _normalised(text) == _normalised(memory.text):
            flags.append({"memory_id": pk, "relation": "duplicate", "score": similarity, "reason": "very similar"})
    return flags


# ---- create, review, edit, forget ------------------------------------------------------------------
def _check_scope(
    *, actor: UserLike, scope: str, role: Group | None, customer: Customer | None, person: User | None
) -> None:
    if scope == Scope.ROLE:
        mine = role is not None and actor.groups.filter(pk=role.pk).exists()
        if role is None or not (mine or is_reviewer(actor)):
            raise ValidationError({"scope_role": ERROR_SCOPE_ROLE})
    elif scope == Scope.CUSTOMER:
        if customer is None or not customers_visible_to(user=actor).filter(pk=customer.pk).exists():
            raise ValidationError({"scope_customer": ERROR_SCOPE_CUSTOMER})
    elif scope == Scope.USER and (person is None or person.pk != actor.pk):
        raise ValidationError({"scope": ERROR_SCOPE_USER})


def _audit_details(memory: MemoryItem, **extra: Any) -> dict[str, Any]:
    """What the trail may keep about a memory: never its text."""
    return {
        "memory_id": memory.pk,
        "kind": memory.kind,
        "scope": memory.scope,
        "scope_target_id": memory.scope_target_id(),
        "status": memory.status,
        "source": memory.source,
        "sensitivity": memory.sensitivity,
        "chars": len(memory.text),
        **extra,
    }


@dataclass(frozen=True)
class MemoryDraft:
    text: str
    kind: str = Kind.FACT
    scope: str = Scope.ORGANISATION
    scope_role: Group | None = None
    scope_customer: Customer | None = None
    scope_user: User | None = None
    sensitivity: str = Sensitivity.INTERNAL


@transaction.atomic
def memory_create(
    *,
    actor: UserLike | None,
    draft: MemoryDraft,
    source: str = Source.STAFF,
    source_message_id: int | None = None,
    source_conversation_id: int | None = None,
    request: HttpRequest | None = None,
) -> MemoryItem:
    """Add a memory. Reviewers' own memories are approved at once unless they repeat or contradict another;
    everything else (staff suggestions, learned proposals, anything flagged) waits in the review queue.
    `actor=None` is the learning task, which only ever proposes."""
    if actor is not None:
        if not actor.has_perm("memory.add_memoryitem"):
            raise PermissionDenied(ERROR_ADD_MEMORY)
        _check_scope(
            actor=actor,
            scope=draft.scope,
            role=draft.scope_role,
            customer=draft.scope_customer,
            person=draft.scope_user,
        )
    if not draft.text.strip():
        raise ValidationError({"text": ERROR_EMPTY_TEXT})
    memory = MemoryItem(
        text=draft.text.strip(),
        kind=draft.kind,
        scope=draft.scope,
        scope_role=draft.scope_role if draft.scope == Scope.ROLE else None,
        scope_customer=draft.scope_customer if draft.scope == Scope.CUSTOMER else None,
        scope_user=draft.scope_user if draft.scope == Scope.USER else None,
        sensitivity=draft.sensitivity,
        source=source,
        source_message_id=source_message_id,
        source_conversation_id=source_conversation_id,
        author=actor if isinstance(actor, User) else None,
        status=Status.PROPOSED,
    )
    memory.embedding = embedding.embed_texts([memory.text])[0]
    memory.full_clean(exclude=["search_vector", "embedding"])
    memory.flags = memory_flags(memory=memory)
    if actor is not None and not memory.flags and can_review(actor, memory):
        memory.status = Status.APPROVED
        memory.reviewed_by = actor if isinstance(actor, User) else None
        memory.reviewed_at = timezone.now()
    memory.save()
    audit(
        actor=actor,
        actor_username="" if actor is not None else SYSTEM_ACTOR,
        action="memory.memory_approved" if memory.status == Status.APPROVED else "memory.memory_proposed",
        target=memory,
        details=_audit_details(
            memory,
            flags=[{"memory_id": f["memory_id"], "relation": f["relation"]} for f in memory.flags],
            source_message_id=source_message_id,
            source_conversation_id=source_conversation_id,
        ),
        request=request,
    )
    return memory


EDITABLE = ("text", "kind", "scope", "scope_role", "scope_customer", "scope_user", "sensitivity")


@transaction.atomic
def memory_update(
    *, actor: UserLike, memory: MemoryItem, draft: MemoryDraft, request: HttpRequest | None = None
) -> MemoryItem:
    """Edit a memory (reviewers; a person edits their personal memories). The text is re-embedded and
    re-checked against the others."""
    if not can_review(actor, memory):
        raise PermissionDenied(ERROR_REVIEW)
    _check_scope(
        actor=actor, scope=draft.scope, role=draft.scope_role, customer=draft.scope_customer, person=draft.scope_user
    )
    if not draft.text.strip():
        raise ValidationError({"text": ERROR_EMPTY_TEXT})
    new_values = {
        "text": draft.text.strip(),
        "kind": draft.kind,
        "scope": draft.scope,
        "scope_role": draft.scope_role if draft.scope == Scope.ROLE else None,
        "scope_customer": draft.scope_customer if draft.scope == Scope.CUSTOMER else None,
        "scope_user": draft.scope_user if draft.scope == Scope.USER else None,
        "sensitivity": draft.sensitivity,
    }
    changed = [name for name, value in new_values.items() if getattr(memory, name) != value]
    if not changed:
        return memory
    for name, value in new_values.items():
        setattr(memory, name, value)
    if "text" in changed:
        memory.embedding = embedding.embed_texts([memory.text])[0]
    memory.full_clean(exclude=["search_vector", "embedding"])
    memory.flags = memory_flags(memory=memory)
    memory.save()
    audit(
        actor=actor,
        action="memory.memory_edited",
        target=memory,
        details=_audit_details(memory, fields=changed),
        request=request,
    )
    return memory


@transaction.atomic
def memory_review(
    *,
    actor: UserLike,
    memory: MemoryItem,
    approve: bool,
    draft: MemoryDraft | None = None,
    request: HttpRequest | None = None,
) -> MemoryItem:
    """Approve (optionally with edits) or reject a proposed memory."""
    if not can_review(actor, memory):
        raise PermissionDenied(ERROR_REVIEW)
    if memory.status != Status.PROPOSED:
        raise ValidationError(ERROR_NOT_PROPOSED)
    edited = False
    if draft is not None:
        before = memory.updated_at
        memory = memory_update(actor=actor, memory=memory, draft=draft, request=request)
        edited = memory.updated_at != before
    memory.status = Status.APPROVED if approve else Status.REJECTED
    memory.reviewed_by = actor if isinstance(actor, User) else None
    memory.reviewed_at = timezone.now()
    memory.save(update_fields=["status", "reviewed_by", "reviewed_at", "updated_at"])
    audit(
        actor=actor,
        action="memory.memory_approved" if approve else "memory.memory_rejected",
        target=memory,
        details=_audit_details(memory, edited=edited, flags=[f["memory_id"] for f in memory.flags]),
        request=request,
    )
    return memory


@transaction.atomic
def memory_archive(*, actor: UserLike, memory: MemoryItem, request: HttpRequest | None = None) -> MemoryItem:
    """Keep a memory on record but stop using it."""
    if not can_review(actor, memory):
        raise PermissionDenied(ERROR_REVIEW)
    memory.status = Status.ARCHIVED
    memory.save(update_fields=["status", "updated_at"])
    audit(actor=actor, action="memory.memory_archived", target=memory, details=_audit_details(memory), request=request)
    return memory


def _tombstone(*, actor: UserLike | None, memory: MemoryItem, reason: str, request: HttpRequest | None) -> None:
    audit(
        actor=actor,
        action="memory.memory_forgotten",
        object_type="memory.memoryitem",
        object_id=memory.pk,
        details=_audit_details(memory, reason=reason),
        request=request,
    )


@transaction.atomic
def memory_delete(*, actor: UserLike, memory: MemoryItem, request: HttpRequest | None = None) -> None:
    """Forget for good: the row (text and embedding) is deleted; the trail keeps a tombstone without content."""
    if not can_forget(actor, memory):
        raise PermissionDenied(ERROR_FORGET)
    if memory.scope_customer_id or memory.scope_user_id:
        from portal.retention.services import deletion_refuse_if_held

        deletion_refuse_if_held(customer_id=memory.scope_customer_id, user_id=memory.scope_user_id)
    _tombstone(actor=actor, memory=memory, reason="deleted", request=request)
    memory.delete()


def memories_forget_for_customer(*, actor: UserLike, customer: Customer, request: HttpRequest | None = None) -> int:
    """Called when a customer record is deleted (inside that transaction)."""
    memories = list(MemoryItem.objects.filter(scope_customer=customer))
    for memory in memories:
        _tombstone(actor=actor, memory=memory, reason="customer deleted", request=request)
    MemoryItem.objects.filter(pk__in=[memory.pk for memory in memories]).delete()
    return len(memories)


# ---- "remember this" on an answer -----------------------------------------------------------------
def memory_remember_answer(
    *, actor: UserLike, message_id: int, draft: MemoryDraft, request: HttpRequest | None = None
) -> MemoryItem:
    message = answer_get(user=actor, message_id=message_id)
    return memory_create(
        actor=actor,
        draft=draft,
        source=Source.CONVERSATION,
        source_message_id=message.pk,
        source_conversation_id=message.conversation_id,
        request=request,
    )


# ---- learning after a conversation ------------------------------------------------------------------
def memory_learning_schedule(*, conversation_id: int) -> None:
    """Queue the learning task once the current transaction commits (the assistant calls this)."""
    if not settings.MEMORY_LEARNING_ENABLED:
        return
    from portal.memory.tasks import memory_learn_from_conversation_task

    transaction.on_commit(lambda: memory_learn_from_conversation_task.delay(conversation_id))
