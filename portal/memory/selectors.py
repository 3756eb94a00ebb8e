"""Reads of memories. Scope and status are decided in SQL; nothing is filtered after the query."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import Group
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.core.exceptions import PermissionDenied
from django.db.models import F, IntegerField, Q, QuerySet, Value
from django.utils import timezone
from pgvector.django import CosineDistance

from audit.services import audit
from portal.core.access import not_visible
from portal.core.parameters import parameter_value
from portal.core.types import UserLike
from portal.customers.selectors import customers_visible_to
from portal.memory import embedding
from portal.memory.models import MemoryItem, Scope, Source, Status

ERROR_NO_MEMORY_ACCESS = "Your role does not include the AI memory."
ERROR_ADD_MEMORY = "Your role may not add memories."
ERROR_REVIEW = "You may not review this memory."
ERROR_FORGET = "You may not delete this memory."
ERROR_MEMORY_NOT_FOUND = "No such memory."
RRF_K = 60
CANDIDATES = 20
_WORD = re.compile(r"[^\W_]{2,}", re.UNICODE)


@dataclass(frozen=True)
class RetrievedMemory:
    memory_id: int
    text: str
    kind: str
    scope: str
    score: float
    url: str
    sensitivity: str = "internal"
    customer_id: int | None = None


def is_reviewer(user: UserLike) -> bool:
    return bool(user.is_authenticated and user.has_perm("memory.review_memoryitem"))


def _role_ids(user: UserLike) -> QuerySet[Group, Any]:
    return user.groups.values("pk")


def memories_in_scope(*, user: UserLike, customer_id: int | None = None) -> QuerySet[MemoryItem]:
    """Memories whose scope includes this user: the organisation's, their roles', their own, and the given
    customer's when they may see that customer. Any status; callers narrow it."""
    if not user.is_authenticated or not user.is_active:
        return MemoryItem.objects.none()
    in_scope = (
        Q(scope=Scope.ORGANISATION)
        | Q(scope=Scope.ROLE, scope_role__in=_role_ids(user))
        | Q(scope=Scope.USER, scope_user_id=user.pk)
    )
    if customer_id is not None:
        readable = customers_visible_to(user=user).filter(pk=customer_id).values("pk")
        in_scope |= Q(scope=Scope.CUSTOMER, scope_customer__in=readable)
    return MemoryItem.objects.filter(in_scope)


def _text_query(query: str) -> SearchQuery | None:
    words = [word.lower() for word in _WORD.findall(query)][:32]
    if not words:
        return None
    # any word may match (OR); ranking prefers memories that match more of them
    return SearchQuery(" | ".join(words), search_type="raw", config="english")


def _leg(number: int) -> Value:
    return Value(number, output_field=IntegerField())


def _candidates(approved: QuerySet[MemoryItem], query: str) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """The nearest memories by vector and the best by full text, CANDIDATES each, in one statement.

    The connection runs with pgvector's iterative scan (knowledge.search.session_settings: the HNSW walk goes
    on past rows the scope filter drops) in relaxed order, so the vector leg is sorted here; a strict-order
    scan needed a transaction of its own for its SET LOCAL, four round trips more per question.
    """
    min_similarity = float(parameter_value("memory_min_similarity"))
    vector_leg = (
        approved.exclude(embedding=None)
        .annotate(score=CosineDistance("embedding", embedding.embed_query(query)), leg=_leg(0))
        .filter(score__lte=1 - min_similarity)
        .order_by("score")
        .values_list("pk", "score", "leg")[:CANDIDATES]
    )
    text_query = _text_query(query)
    legs = vector_leg
    if text_query is not None:
        text_leg = (
            approved.filter(search_vector=text_query)
            .annotate(score=SearchRank(F("search_vector"), text_query), leg=_leg(1))
            .order_by("-score", "pk")
            .values_list("pk", "score", "leg")[:CANDIDATES]
        )
        legs = vector_leg.union(text_leg, all=True)
    rows = list(legs)
    by_vector = sorted(((pk, float(score)) for pk, score, leg in rows if leg == 0), key=lambda row: (row[1], row[0]))
    by_text = sorted(((pk, float(score)) for pk, score, leg in rows if leg == 1), key=lambda row: (-row[1], row[0]))
    return by_vector, by_text


def memory_retrieve(
    *, user: UserLike, query: str, customer_id: int | None = None, k: int = 4, audit_event: bool = True
) -> list[RetrievedMemory]:
    """Approved memories in scope for this user that match the query (vector + full text, fused by rank).

    Updates last-used. A memory must be similar enough (MEMORY_RETRIEVE_MIN_SIMILARITY) or share words
    with the query, so an unrelated question gets no memories at all.
    """
    if not query.strip() or k <= 0:
        return []
    approved = memories_in_scope(user=user, customer_id=customer_id).filter(status=Status.APPROVED)
    by_vector, by_text = _candidates(approved, query)
    fused: dict[int, float] = {}
    similarity: dict[int, float] = {pk: 1 - float(distance) for pk, distance in by_vector}
    for ranking in (by_vector, by_text):
        for position, (pk, _value) in enumerate(ranking, start=1):
            fused[pk] = fused.get(pk, 0.0) + 1 / (RRF_K + position)
    chosen = sorted(fused, key=lambda pk: (-fused[pk], pk))[:k]
    if not chosen:
        return []
    rows = MemoryItem.objects.in_bulk(chosen)
    MemoryItem.objects.filter(pk__in=chosen).update(last_used_at=timezone.now(), use_count=F("use_count") + 1)
    results = [
        RetrievedMemory(
            memory_id=pk,
            text=rows[pk].text,
            kind=rows[pk].kind,
            scope=rows[pk].scope,
            score=round(similarity.get(pk, 0.0), 4),
            url=rows[pk].get_absolute_url(),
            sensitivity=rows[pk].sensitivity,
            customer_id=rows[pk].scope_customer_id,
        )
        for pk in chosen
        if pk in rows
    ]
    if audit_event:
        audit(
            actor=user,
            action="memory.searched",
            object_type="memory.memoryitem",
            details={"memory_ids": [memory.memory_id for memory in results], "customer_id": customer_id},
        )
    return results


# ---- the memory pages ---------------------------------------------------------------------------------
def memories_visible_to(*, user: UserLike) -> QuerySet[MemoryItem]:
    """What the memory pages show this user.

    Personal memories: only to their person (who also reviews them). Reviewers: every organisation, role and
    customer memory (customer ones only for customers they may see). Others: approved memories in their
    scope, plus what they proposed themselves.
    """
    if not user.is_authenticated or not user.has_perm("memory.view_memoryitem"):
        return MemoryItem.objects.none()
    own = Q(scope=Scope.USER, scope_user_id=user.pk)
    readable_customers = customers_visible_to(user=user).values("pk")
    customer_ok = Q(scope_customer__isnull=True) | Q(scope_customer__in=readable_customers)
    if is_reviewer(user):
        shared = Q(scope__in=[Scope.ORGANISATION, Scope.ROLE]) | Q(
            scope=Scope.CUSTOMER, scope_customer__in=readable_customers
        )
        return MemoryItem.objects.filter(own | shared)
    in_scope = (
        Q(scope=Scope.ORGANISATION)
        | Q(scope=Scope.ROLE, scope_role__in=_role_ids(user))
        | Q(scope=Scope.CUSTOMER, scope_customer__in=readable_customers)
    )
    return MemoryItem.objects.filter(
        own | (Q(status=Status.APPROVED) & in_scope) | (Q(author_id=user.pk) & customer_ok)
    )


def memory_list(
    *,
    user: UserLike,
    scope: str = "",
    status: str = "",
    kind: str = "",
    search: str = "",
    customer_id: int | None = None,
) -> QuerySet[MemoryItem]:
    if not user.has_perm("memory.view_memoryitem"):
        raise PermissionDenied(ERROR_NO_MEMORY_ACCESS)
    memories = memories_visible_to(user=user).select_related("scope_role", "scope_customer", "scope_user", "author")
    if scope:
        memories = memories.filter(scope=scope)
    if status:
        memories = memories.filter(status=status)
    if kind:
        memories = memories.filter(kind=kind)
    if customer_id:
        memories = memories.filter(scope_customer_id=customer_id)
    if search:
        memories = memories.filter(text__icontains=search)
    return memories.order_by("-updated_at", "-pk")


def memory_get(*, user: UserLike, memory_id: int) -> MemoryItem:
    if not user.has_perm("memory.view_memoryitem"):
        raise PermissionDenied(ERROR_NO_MEMORY_ACCESS)
    memory = (
        memories_visible_to(user=user)
        .select_related("scope_role", "scope_customer", "scope_user", "author", "reviewed_by")
        .filter(pk=memory_id)
        .first()
    )
    if memory is None:
        raise not_visible(MemoryItem, memory_id, ERROR_MEMORY_NOT_FOUND)
    return memory


def can_review(user: UserLike, memory: MemoryItem) -> bool:
    """Approve, edit, reject: a person reviews their own personal memories; reviewers review the rest."""
    if memory.scope == Scope.USER:
        return memory.scope_user_id == user.pk
    return is_reviewer(user)


def require_memory_access(*, user: UserLike) -> None:
    if not user.has_perm("memory.view_memoryitem"):
        raise PermissionDenied(ERROR_NO_MEMORY_ACCESS)


def require_memory_adding(*, user: UserLike) -> None:
    """403 unless the user's role includes the memory and may add to it."""
    require_memory_access(user=user)
    if not user.has_perm("memory.add_memoryitem"):
        raise PermissionDenied(ERROR_ADD_MEMORY)


def require_review(*, user: UserLike, memory: MemoryItem) -> None:
    if not can_review(user, memory):
        raise PermissionDenied(ERROR_REVIEW)


def require_forget(*, user: UserLike, memory: MemoryItem) -> None:
    if not can_forget(user, memory):
        raise PermissionDenied(ERROR_FORGET)


def can_forget(user: UserLike, memory: MemoryItem) -> bool:
    if memory.scope == Scope.USER:
        return memory.scope_user_id == user.pk
    if user.has_perm("memory.delete_memoryitem"):
        return True
    # whoever proposed something may withdraw it before it is approved
    return memory.author_id == user.pk and memory.status == Status.PROPOSED


def answers_remembered(*, limit: int = 5000) -> list[int]:
    """The ids of the assistant answers someone chose "remember this" on (a memory with a person as its author
    and the answer as its source; the memories learned after a conversation have no author), newest first:
    a signal, like a helpful rating, that the answer's passages served its question."""
    ids = (
        MemoryItem.objects.filter(source=Source.CONVERSATION, author__isnull=False, source_message_id__isnull=False)
        .order_by("-pk")
        .values_list("source_message_id", flat=True)[:limit]
    )
    return [int(message_id) for message_id in ids if message_id is not None]
