"""After a conversation: ask the routed model, through the egress gate, which facts are worth keeping.

The model only proposes; every proposal waits in the review queue, flagged when it repeats or contradicts
an existing memory. Nothing reaches the model except through routing's gated door, `model_complete_gated`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from governance.gate import PromptPart
from portal.assistant.selectors import conversation_for_learning, conversations_idle_with_answers, history_for
from portal.core.parameters import parameter_value
from portal.customers.selectors import customers_visible_to
from portal.memory.models import Kind, LearningRun, Scope, Source

if TYPE_CHECKING:
    from portal.assistant.models import Message

logger = logging.getLogger(__name__)

LEARNING_INSTRUCTIONS = (
    "You help a company keep a long-term memory for its staff assistant. Read the conversation below and list "
    "at most {limit} short, self-contained statements worth remembering for future conversations: stable facts "
    "about the business or the customer, preferences, procedures, decisions. Leave out small talk, one-off "
    "details, anything already obvious, and anything you are unsure of. Answer with JSON only: a list of objects "
    'with "text", "kind" (one of fact, preference, procedure, decision) and "scope" ("organisation" for '
    'everyone, "customer" for the customer this conversation is about, "user" for the asking person only). '
    "Answer [] when nothing is worth keeping."
)
LEARNING_QUESTION = "Which statements from this conversation are worth remembering? JSON only."
_JSON_LIST = re.compile(r"\[.*\]", re.DOTALL)


@dataclass(frozen=True)
class Proposal:
    text: str
    kind: str
    scope: str


@dataclass(frozen=True)
class LearningResult:
    conversation_id: int
    proposed_ids: tuple[int, ...] = ()
    skipped: str = ""  # why nothing was asked or kept


def parse_proposals(text: str, *, allow_customer: bool, limit: int) -> list[Proposal]:
    """The model's JSON list, tolerating prose or code fences around it; unusable items are dropped."""
    match = _JSON_LIST.search(text or "")
    if match is None:
        return []
    try:
        items = json.loads(match.group(0))
    except json.JSONDecodeError:
        return []
    proposals: list[Proposal] = []
    seen: set[str] = set()
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        statement = str(item.get("text", "")).strip()
        if not statement or len(statement) > settings.MEMORY_MAX_CHARS or statement.lower() in seen:
            continue
        kind = str(item.get("kind", Kind.FACT)).lower()
        scope = str(item.get("scope", Scope.ORGANISATION)).lower()
        if kind not in Kind.values:
            kind = Kind.FACT
        if scope not in (Scope.ORGANISATION, Scope.CUSTOMER, Scope.USER) or (
            scope == Scope.CUSTOMER and not allow_customer
        ):
            scope = Scope.USER  # the narrowest audience when the model's choice does not fit
        seen.add(statement.lower())
        proposals.append(Proposal(statement, kind, scope))
        if len(proposals) >= limit:
            break
    return proposals


def learning_parts(*, messages: list[Message], limit: int) -> list[PromptPart]:
    parts = [PromptPart(kind="instructions", text=LEARNING_INSTRUCTIONS.format(limit=limit), role="system")]
    for message in messages:
        parts.append(
            PromptPart(
                kind="history",
                text=message.content[: settings.MEMORY_LEARNING_MESSAGE_CHARS],
                role="assistant" if message.role == "assistant" else "user",
                source={"message_id": message.pk},
            )
        )
    parts.append(PromptPart(kind="question", text=LEARNING_QUESTION))
    return parts


def memory_learn_from_conversation(*, conversation_id: int) -> LearningResult:
    """Idempotent: a conversation is learned from once per last message (re-running adds nothing)."""
    from portal.memory.services import MemoryDraft, memory_create
    from portal.routing.services import model_complete_gated  # loads litellm: only when a task learns

    conversation = conversation_for_learning(conversation_id=conversation_id)
    if conversation is None:
        return LearningResult(conversation_id, skipped="conversation deleted")
    messages = history_for(conversation=conversation, limit=settings.MEMORY_LEARNING_MESSAGES)
    if not any(message.role == "assistant" for message in messages):
        return LearningResult(conversation_id, skipped="no answer yet")
    last_message_id = messages[-1].pk
    if LearningRun.objects.filter(conversation_id=conversation_id, last_message_id=last_message_id).exists():
        return LearningResult(conversation_id, skipped="already learned from")
    owner = conversation.owner
    limit = settings.MEMORY_LEARNING_MAX_PROPOSALS
    completion = model_complete_gated(
        user=owner,
        parts=learning_parts(messages=messages, limit=limit),
        task_type="summarize",
        question=LEARNING_QUESTION,
        conversation_key=f"memory-learning-{conversation_id}",
        subject=("assistant.conversation", conversation_id),
        temperature=0.0,
        max_tokens=600,
    )
    if completion.not_sent:
        logger.info("memory learning for conversation %s not sent: %s", conversation_id, completion.not_sent)
        return LearningResult(conversation_id, skipped=f"not sent: {completion.not_sent}")
    if not completion.answered:
        error = completion.outcome.error if completion.outcome is not None else ""
        return LearningResult(conversation_id, skipped=f"model call failed: {error}")
    text = completion.text
    customer = None
    if conversation.customer_id is not None:
        customer = customers_visible_to(user=owner).filter(pk=conversation.customer_id).first()
    proposals = parse_proposals(text, allow_customer=customer is not None, limit=limit)
    created: list[int] = []
    with transaction.atomic():
        run, fresh = LearningRun.objects.get_or_create(conversation_id=conversation_id, last_message_id=last_message_id)
        if not fresh:  # a concurrent run got here first
            return LearningResult(conversation_id, skipped="already learned from")
        for proposal in proposals:
            draft = MemoryDraft(
                text=proposal.text,
                kind=proposal.kind,
                scope=proposal.scope,
                scope_customer=customer if proposal.scope == Scope.CUSTOMER else None,
                scope_user=owner if proposal.scope == Scope.USER else None,
            )
            memory = memory_create(
                actor=None,
                draft=draft,
                source=Source.CONVERSATION,
                source_message_id=last_message_id,
                source_conversation_id=conversation_id,
            )
            created.append(memory.pk)
        run.proposed = len(created)
        run.note = "" if created else "nothing worth keeping"
        run.save(update_fields=["proposed", "note"])
    if not created:
        return LearningResult(conversation_id, skipped="nothing worth keeping")
    return LearningResult(conversation_id, proposed_ids=tuple(created))


def conversations_due_for_learning(*, now: dt.datetime | None = None) -> list[int]:
    """Conversations idle for MEMORY_LEARNING_IDLE_MINUTES (within the look-back window) whose latest
    message has not been learned from yet."""
    now = now or timezone.now()
    if parameter_value("learning_paused"):
        return []
    idle_since = now - dt.timedelta(minutes=parameter_value("learning_idle_minutes"))
    oldest = idle_since - dt.timedelta(hours=parameter_value("learning_lookback_hours"))
    learned = LearningRun.objects.filter(conversation_id=OuterRef("pk"), last_message_id=OuterRef("last_message_id"))
    conversations = (
        conversations_idle_with_answers(idle_since=idle_since, oldest=oldest)
        .annotate(learned=Exists(learned))
        .filter(learned=False)
        .order_by("updated_at")
        .values_list("pk", flat=True)
    )
    return list(conversations[: parameter_value("learning_batch")])
