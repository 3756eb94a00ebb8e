"""The assistant's writes, and the ask pipeline (DESIGN.md, "The main flow: one assistant question").

`answer()` reads top to bottom:

    authorize -> store the question -> route -> retrieve -> build -> egress -> [preview] -> call -> restore
    -> store the answer + audit (one transaction)

Each stage is a plain typed function, tested alone. The question is stored before anything is sent, so a
provider outage leaves it in the conversation with a clear error answer beside it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.http import Http404

from audit.models import Outcome
from audit.privacy import text_fingerprint
from audit.services import audit, audit_batch
from governance import gate
from governance.gate import Destination, EgressBlocked, GatedPrompt, PromptPart
from portal.assistant.models import AssistantProfile, Conversation, Message, MessageRole, MessageStatus
from portal.assistant.selectors import (
    ERROR_NOT_PENDING,
    ERROR_PROFILE_WITHDRAWN,
    profile_is_usable,
    require_assistant_use,
)
from portal.core.access import ObjectHidden

logger = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_TITLE = "New conversation"
TITLE_LENGTH = 60
HISTORY_MESSAGES = 6
HISTORY_CHARS = 2000
MEMORY_ITEMS = 4
SYSTEM_PROMPT = (
    "You are the assistant of this organisation's staff portal. When numbered source passages are given, "
    "answer from them and cite each passage you use as [n] with its number. If they do not contain the "
    "answer, say so plainly. Answer in the language of the question."
)
ERROR_EMPTY_QUESTION = "Type a question first."
ERROR_PREPARE_FAILED = (
    "The assistant could not prepare this question (nothing was sent). Please try again; if it keeps "
    "failing, tell an administrator."
)
ERROR_CALL_FAILED = "The model could not be reached; your question is saved. Please try again later."
ERROR_NO_DESTINATION = "Governance did not clear this question for any configured model; nothing was sent."
ERROR_INTERRUPTED = "The answer was interrupted before it was complete."
ERROR_TITLE = "Give the conversation a title (at most 200 characters)."
ERROR_RATING = "Rate with thumbs up or thumbs down."


# ---- data passed between the stages -------------------------------------------------------------------
@dataclass(frozen=True)
class Authorization:
    profile: AssistantProfile
    knowledge_bases: tuple[Any, ...]  # knowledge.KnowledgeBase the profile searches AND the user may read
    withheld_knowledge_bases: int  # profile knowledge bases this user may not read (not searched)


@dataclass(frozen=True)
class RetrievedContext:
    chunks: tuple[Any, ...] = ()  # knowledge.selectors.RetrievedChunk
    memories: tuple[Any, ...] = ()  # portal.memory.selectors.RetrievedMemory
    customer: Any | None = None  # portal.customers.selectors.CustomerContext
    customer_predictions: dict[str, str] = field(default_factory=dict)  # portal.ml: field "predictions"


@dataclass(frozen=True)
class Citation:
    number: int
    chunk_id: int
    document_id: int
    document_title: str
    knowledge_base_name: str
    page_number: int | None
    url: str
    score: float
    page_end: int | None = None
    pages: str = ""  # "page 7" / "pages 7–8"


@dataclass(frozen=True)
class Prepared:
    """Everything needed to call the model; nothing has left the server yet."""

    question: Message
    profile: AssistantProfile
    decision: Any  # portal.routing.types.RouteDecision
    gated: GatedPrompt
    citations: tuple[Citation, ...]
    retrieval: dict[str, Any]


@dataclass(frozen=True)
class Finished:
    """The pipeline stopped before the call (block, budget, failure): the answer says why."""

    question: Message
    answer: Message


@dataclass(frozen=True)
class NeedsConfirmation:
    question: Message


# events `answer()` yields, in order: QuestionStored, (AnswerDelta* | PreviewReady), AnswerStored
@dataclass(frozen=True)
class QuestionStored:
    message: Message


@dataclass(frozen=True)
class AnswerDelta:
    text: str
    reset: bool = False  # discard the text shown so far (a fallback model starts again)


@dataclass(frozen=True)
class PreviewReady:
    question: Message


@dataclass(frozen=True)
class AnswerStored:
    message: Message
    timings: dict[str, float] = field(default_factory=dict)


AnswerEvent = QuestionStored | AnswerDelta | PreviewReady | AnswerStored


# ---- database work from async code --------------------------------------------------------------------
# A streamed answer lasts seconds; holding a database connection for all of it would cap the number of
# simultaneous answers at the server's connection limit. So the database is used in short phases, at most
# ASSISTANT_DB_CONCURRENCY of them at once per process, each giving its connection back when it ends.
_db_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def release_connection() -> None:
    """Close this thread's database connection, unless a transaction (e.g. a test's) still needs it."""
    if not connection.in_atomic_block:
        connection.close()


def _db_slot() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slot = _db_slots.get(loop)
    if slot is None:
        slot = _db_slots[loop] = asyncio.Semaphore(int(getattr(settings, "ASSISTANT_DB_CONCURRENCY", 8)))
    return slot


async def db_phase(function: Callable[..., T], /, **kwargs: Any) -> T:
    """Run a synchronous database function from async code in a bounded phase, then free the connection."""

    def run() -> T:
        try:
            return function(**kwargs)
        finally:
            release_connection()

    # A connection opened outside a phase (routing's usage row, say) must not be held while waiting here.
    await sync_to_async(release_connection)()
    async with _db_slot():
        return await sync_to_async(run)()


# ---- conversations --------------------------------------------------------------------------------------
@transaction.atomic
def conversation_create(*, actor: Any, profile: AssistantProfile, customer_id: int | None = None) -> Conversation:
    require_assistant_use(user=actor)
    if not profile_is_usable(user=actor, profile_id=profile.pk):
        raise Http404("No such assistant profile.")
    if customer_id is not None:
        from portal.customers.selectors import customer_require_visible

        customer_require_visible(user=actor, customer_id=customer_id)  # 404 for a record they may not see
    conversation = Conversation(owner=actor, profile=profile, title=DEFAULT_TITLE, customer_id=customer_id)
    conversation.full_clean()
    conversation.save()
    audit(
        actor=actor,
        action="assistant.conversation_created",
        target=conversation,
        details={"profile_id": profile.pk, "profile": profile.name},
    )
    return conversation


@transaction.atomic
def conversation_rename(*, actor: Any, conversation: Conversation, title: str) -> Conversation:
    title = title.strip()
    if not title or len(title) > 200:
        raise ValidationError(ERROR_TITLE)
    conversation.title = title
    conversation.full_clean()
    conversation.save(update_fields=["title", "updated_at"])
    # A title is typed text (the first question, by default): the trail keeps only its fingerprint.
    audit(
        actor=actor,
        action="assistant.conversation_renamed",
        target=conversation,
        details=text_fingerprint(title, name="title"),
    )
    return conversation


@transaction.atomic
def conversation_delete(*, actor: Any, conversation: Conversation) -> None:
    """Delete a conversation with its messages (the manifests stored in them) and its pseudonymization vaults."""
    from portal.retention.services import conversations_purge, deletion_refuse_if_held

    deletion_refuse_if_held(conversation_id=conversation.pk)  # a legal hold suspends every deletion
    audit(
        actor=actor,
        action="assistant.conversation_deleted",
        target=conversation,
        details={"conversation_id": conversation.pk, "messages": conversation.messages.count()},
    )
    conversations_purge([conversation.pk])


@transaction.atomic
def message_feedback(*, actor: Any, message: Message, rating: int, comment: str = "") -> Message:
    if rating not in (1, -1):
        raise ValidationError(ERROR_RATING)
    message.feedback = rating
    message.feedback_comment = comment.strip()
    message.full_clean()
    message.save(update_fields=["feedback", "feedback_comment"])
    audit(
        actor=actor,
        action="assistant.feedback_given",
        target=message,
        details={
            "rating": rating,
            "conversation_id": message.conversation_id,
            **text_fingerprint(message.feedback_comment, name="comment"),
        },
    )
    return message


# ---- stage 1: authorize ----------------------------------------------------------------------------------
def authorize(*, user: Any, conversation: Conversation) -> Authorization:
    """May this user ask with this conversation's profile, and which of its knowledge bases may they read?"""
    require_assistant_use(user=user)
    if conversation.owner_id != user.pk:
        raise ObjectHidden("No such conversation.")
    if not profile_is_usable(user=user, profile_id=conversation.profile_id):
        raise PermissionDenied(ERROR_PROFILE_WITHDRAWN)
    from knowledge.selectors import knowledge_bases_for_user

    profile = conversation.profile
    wanted = list(profile.knowledge_bases.values_list("pk", flat=True))
    readable = tuple(knowledge_bases_for_user(user=user).filter(pk__in=wanted).order_by("pk")) if wanted else ()
    return Authorization(
        profile=profile, knowledge_bases=readable, withheld_knowledge_bases=len(wanted) - len(readable)
    )


# ---- stage 2: route --------------------------------------------------------------------------------------
def route(*, user: Any, profile: AssistantProfile, question: str) -> Any:
    """Task type (fixed by the profile, or classified locally) -> tier -> ordered candidate models."""
    from portal.routing.services import route_decide

    return route_decide(user=user, task_type=profile.task_type or None, question=question)


def route_as_dict(decision: Any) -> dict[str, Any]:
    return {  # same keys as RouteDecision.as_dict()
        "task_type": decision.task_type,
        "tier": decision.tier,
        "reason": decision.reason,
        "budget_note": decision.budget_note,
        "candidates": [candidate.key for candidate in decision.candidates],
    }


def route_audit(*, actor: Any, question: Message, decision: Any) -> None:
    """The route decision and its reason are an audited decision of their own (a downgrade too)."""
    details = route_as_dict(decision)
    audit(actor=actor, action="routing.route_chosen", target=question, details=details)
    if decision.budget_note:
        audit(actor=actor, action="routing.budget_downgraded", target=question, details=details)


def budget_refusal_audit(*, actor: Any, question: Message, message: str) -> None:
    audit(
        actor=actor,
        action="routing.budget_refused",
        target=question,
        outcome=Outcome.DENIED,
        details={"message": message},
    )


# ---- stage 3: retrieve -----------------------------------------------------------------------------------
def retrieve(
    *,
    user: Any,
    question: str,
    knowledge_bases: Sequence[Any],
    passages: int = 6,
    customer_id: int | None = None,
) -> RetrievedContext:
    """Permission-filtered search of the profile's knowledge bases, plus memory and customer context."""
    chunks: tuple[Any, ...] = ()
    if knowledge_bases:
        from knowledge.selectors import retrieve as knowledge_retrieve

        chunks = tuple(knowledge_retrieve(user=user, query=question, knowledge_bases=knowledge_bases, k=passages))
    memories: tuple[Any, ...] = ()
    memory_retrieve = _optional("portal.memory.selectors", "memory_retrieve")
    if memory_retrieve is not None:
        memories = tuple(memory_retrieve(user=user, query=question, customer_id=customer_id, k=MEMORY_ITEMS))
    customer = None
    customer_context = _optional("portal.customers.selectors", "customer_context")
    if customer_context is not None and customer_id is not None:
        try:
            customer = customer_context(user=user, customer_id=customer_id)
        except (Http404, PermissionDenied):
            # The record was restricted, or the user's role changed, since the conversation began: answer
            # without it (the retrieval details say so) rather than fail every later question.
            customer = None
    predictions: dict[str, str] = {}
    prediction_fields = _optional("portal.ml.selectors", "customer_prediction_fields")
    if customer is not None and prediction_fields is not None:
        predictions = prediction_fields(user=user, customer_id=customer.customer_id)
    return RetrievedContext(chunks=chunks, memories=memories, customer=customer, customer_predictions=predictions)


def _optional(module_name: str, attribute: str) -> Any:
    """A selector of an app that may not be installed (memory, customers)."""
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return getattr(module, attribute, None)


def citations_for(chunks: Iterable[Any]) -> tuple[Citation, ...]:
    return tuple(
        Citation(
            number=number,
            chunk_id=chunk.chunk_id,
            document_id=chunk.document_id,
            document_title=chunk.document_title,
            knowledge_base_name=chunk.knowledge_base_name,
            page_number=chunk.page_number,
            page_end=chunk.page_end,
            pages=chunk.pages_label,
            url=chunk.url,
            score=round(float(chunk.score), 4),
        )
        for number, chunk in enumerate(chunks, start=1)
    )


def _pages_suffix(chunk: Any) -> str:
    label = getattr(chunk, "pages_label", "")
    return f", {label}" if label else ""


# ---- stage 4: build --------------------------------------------------------------------------------------
def history_for(*, conversation: Conversation, before: Message) -> list[Message]:
    """The last complete questions and answers before this question, oldest first."""
    recent = (
        conversation.messages.filter(status=MessageStatus.COMPLETE, pk__lt=before.pk)
        .exclude(content="")
        .order_by("-pk")[:HISTORY_MESSAGES]
    )
    return list(reversed(recent))


def build(
    *, profile: AssistantProfile, history: Sequence[Message], context: RetrievedContext, question: str
) -> list[PromptPart]:
    """The prompt, as parts the gate can judge one by one (instructions, history, passages, ..., question)."""
    instructions = SYSTEM_PROMPT + ("\n\n" + profile.instructions.strip() if profile.instructions.strip() else "")
    parts = [PromptPart(kind="instructions", text=instructions, role="system", source={"profile_id": profile.pk})]
    for message in history:
        parts.append(
            PromptPart(
                kind="history",
                text=message.content[:HISTORY_CHARS],
                role="assistant" if message.is_answer else "user",
                source={"message_id": message.pk},
            )
        )
    flagged = _optional("portal.ml.prompt", "marks_for")  # passages the local models flagged (portal/ml)
    marks = flagged(context.chunks) if flagged is not None and context.chunks else {}
    for number, chunk in enumerate(context.chunks, start=1):
        text = f"[{number}] Source: {chunk.document_title}{_pages_suffix(chunk)}\n{chunk.text}"
        source = {
            "citation": number,
            "chunk_id": chunk.chunk_id,
            "document_id": chunk.document_id,
            "knowledge_base_id": chunk.knowledge_base_id,
            "classification": chunk.classification,
        }
        if chunk.chunk_id in marks:
            text, source = _optional("portal.ml.prompt", "passage_part")(text, source, marks[chunk.chunk_id])
        parts.append(PromptPart(kind="chunk", text=text, source=source))
    for memory in context.memories:
        parts.append(
            PromptPart(
                kind="memory",
                text=f"Remembered ({memory.kind}): {memory.text}",
                source={
                    "memory_id": memory.memory_id,
                    "scope": memory.scope,
                    "sensitivity": getattr(memory, "sensitivity", "internal"),
                    # memories carry the same labels as knowledge bases; the gate applies the label rules to both
                    "classification": getattr(memory, "sensitivity", "internal"),
                    "customer_id": getattr(memory, "customer_id", None),
                },
            )
        )
    if context.customer is not None:
        customer = context.customer
        for name, value in {**customer.fields, **context.customer_predictions}.items():
            parts.append(
                PromptPart(
                    kind="customer",
                    text=f"Customer {name}: {value}",
                    source={"customer_id": customer.customer_id, "field": name},
                )
            )
    parts.append(PromptPart(kind="question", text=question, source={}))
    return parts


# ---- stage 5: egress -------------------------------------------------------------------------------------
def egress(
    *,
    user: Any,
    conversation: Conversation,
    question: Message,
    decision: Any,
    parts: Sequence[PromptPart],
    sensitive: bool = False,
) -> GatedPrompt:
    """The governance gate decides what of the prompt may leave, and to which of the candidates; it audits
    its decision itself, about this question. `sensitive`: the profile is marked sensitive, so every
    personal value is at least abstracted."""
    destinations: Sequence[Destination] = decision.candidates
    gated = gate.egress_gate(
        user=user,
        conversation_key=f"assistant-conversation-{conversation.pk}",
        destinations=destinations,
        parts=parts,
        subject=("assistant.message", question.pk),
        sensitive=sensitive,
    )
    if not gated.destinations:
        raise EgressBlocked(ERROR_NO_DESTINATION)
    return gated


def preview_required(*, user: Any, gated: GatedPrompt | None = None) -> bool:
    """Whether the user must see what would leave before it is sent.

    With the gated prompt, the policy the gate just applied decides (the same version and roles);
    without it, the policy in force for the user's roles. Unknown: yes, the safe side.
    """
    if gated is not None and "preview_before_send" in gated.manifest:
        return bool(gated.manifest["preview_before_send"])
    return bool(gate.preview_required(user))


def preview_of(gated: GatedPrompt) -> dict[str, Any]:
    return {
        "sha256": gated.prompt_sha256,
        "messages": [dict(message) for message in gated.messages],
        "destinations": list(gated.destinations),
    }


# ---- stage 6 + 7: call and restore -----------------------------------------------------------------------
def call(*, user: Any, prepared: Prepared) -> AsyncIterator[Any]:
    """The model's stream (StreamDelta pieces, then exactly one CallOutcome); routing never raises on faults."""
    from portal.routing.services import model_stream

    return model_stream(
        user=user,
        gated=prepared.gated,
        decision=prepared.decision,
        assistant_profile_id=prepared.profile.pk,
        temperature=prepared.profile.temperature,
        max_tokens=prepared.profile.max_tokens,
    )


def is_outcome(item: Any) -> bool:
    return hasattr(item, "outcome") and hasattr(item, "attempts")


def outcome_as_usage(outcome: Any) -> dict[str, Any]:
    return {
        "model_key": outcome.model_key,
        "model_name": outcome.model_name,
        "provider": outcome.provider,
        "outcome": outcome.outcome,
        "error": outcome.error,
        "tokens_in": outcome.tokens_in,
        "tokens_out": outcome.tokens_out,
        "cost": str(Decimal(outcome.cost)),
        "first_token_ms": round(outcome.first_token_ms, 1) if outcome.first_token_ms is not None else None,
        "total_ms": round(outcome.total_ms, 1),
        "attempts": list(outcome.attempts),
    }


# ---- stage 8 + 9: store and audit ------------------------------------------------------------------------
@transaction.atomic
def question_store(*, actor: Any, conversation: Conversation, text: str) -> Message:
    text = text.strip()
    if not text:
        raise ValidationError(ERROR_EMPTY_QUESTION)
    message = Message(conversation=conversation, role=MessageRole.USER, content=text)
    # the conversation is the caller's loaded, authorized object: no query to re-check that it exists
    message.full_clean(exclude=["conversation"])
    message.save()
    if conversation.title == DEFAULT_TITLE:
        conversation.title = _title_from(text)
    conversation.save(update_fields=["title", "updated_at"])
    audit(
        actor=actor,
        action="assistant.question_asked",
        target=message,
        details={"conversation_id": conversation.pk, "profile_id": conversation.profile_id, "chars": len(text)},
    )
    return message


def _title_from(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


@transaction.atomic
def question_preview_store(*, actor: Any, question: Message, gated: GatedPrompt, decision: Any) -> Message:
    question.status = MessageStatus.AWAITING_CONFIRMATION
    question.manifest = {"preview": preview_of(gated), "egress": gated.manifest}
    question.route = route_as_dict(decision)
    question.save(update_fields=["status", "manifest", "route"])
    audit(
        actor=actor,
        action="assistant.preview_shown",
        target=question,
        details={"prompt_sha256": gated.prompt_sha256, "destinations": list(gated.destinations)},
    )
    return question


@transaction.atomic
def question_confirm(*, actor: Any, question: Message) -> Message:
    question.status = MessageStatus.COMPLETE
    question.save(update_fields=["status"])
    audit(
        actor=actor,
        action="assistant.preview_confirmed",
        target=question,
        details={"prompt_sha256": question.manifest.get("preview", {}).get("sha256", "")},
    )
    return question


@transaction.atomic
def question_cancel(*, actor: Any, question: Message) -> Message:
    if question.status != MessageStatus.AWAITING_CONFIRMATION:
        raise ValidationError(ERROR_NOT_PENDING)
    question.status = MessageStatus.CANCELLED
    question.save(update_fields=["status"])
    audit(actor=actor, action="assistant.preview_cancelled", target=question, details={})
    return question


_CITED = re.compile(r"\[(\d{1,3})\]")


@transaction.atomic
def answer_store(
    *,
    actor: Any,
    question: Message,
    text: str,
    status: str = MessageStatus.COMPLETE,
    error: str = "",
    decision: Any | None = None,
    gated: GatedPrompt | None = None,
    citations: Sequence[Citation] = (),
    usage: dict[str, Any] | None = None,
    retrieval: dict[str, Any] | None = None,
) -> Message:
    """Store the answer (or why there is none) and audit it, in one transaction."""
    cited = {int(number) for number in _CITED.findall(text)}
    conversation = question.conversation
    message = Message(
        conversation=conversation,
        role=MessageRole.ASSISTANT,
        status=status,
        content=text,
        error=error,
        reply_to=question,
        citations=[{**asdict(citation), "cited": citation.number in cited} for citation in citations],
        route=route_as_dict(decision) if decision is not None else {},
        manifest=gated.manifest if gated is not None else {},
        usage=usage or {},
    )
    message.full_clean(exclude=["conversation", "reply_to"])  # both are loaded objects of this flow
    message.save()
    conversation.save(update_fields=["updated_at"])
    usage = usage or {}
    outcome = {
        MessageStatus.COMPLETE: Outcome.SUCCESS,
        MessageStatus.BLOCKED: Outcome.DENIED,
    }.get(MessageStatus(status), Outcome.ERROR)
    audit(
        actor=actor,
        action="assistant.answer_stored",
        target=message,
        outcome=outcome,
        details={
            "conversation_id": conversation.pk,
            "question_id": question.pk,
            "status": status,
            "error": error,
            "route": message.route,
            "model_key": usage.get("model_key", ""),
            "tokens_in": usage.get("tokens_in", 0),
            "tokens_out": usage.get("tokens_out", 0),
            "cost": usage.get("cost", "0"),
            "attempts": len(usage.get("attempts", [])),
            "prompt_sha256": gated.prompt_sha256 if gated is not None else "",
            # the manifest itself is stored with the answer; its hash ties that copy to the chain
            "manifest_sha256": gated.manifest_sha256 if gated is not None else "",
            "policy_version": (gated.manifest.get("policy_version") if gated is not None else None),
            "destinations": list(gated.destinations) if gated is not None else [],
            "chunk_ids": [citation.chunk_id for citation in citations],
            "cited": sorted(cited),
            "retrieval": retrieval or {},
        },
    )
    return message


# ---- the flow --------------------------------------------------------------------------------------------
def prepare(
    *,
    user: Any,
    conversation: Conversation,
    question: str = "",
    confirm_question_id: int | None = None,
    authorization: Authorization | None = None,
) -> Prepared | Finished | NeedsConfirmation:
    """Stages 1-5 (synchronous: database and local models). Nothing leaves the server here.

    `authorization`: the result of `authorize()` for this user and conversation when the caller (the view)
    has just computed it in the same request.
    """
    clock = _StageClock()
    if authorization is None or authorization.profile.pk != conversation.profile_id:
        authorization = authorize(user=user, conversation=conversation)
    profile = authorization.profile
    clock.lap("authorize")
    if confirm_question_id is None:
        question_message = question_store(actor=user, conversation=conversation, text=question)
    else:
        pending = conversation.messages.filter(
            pk=confirm_question_id, role=MessageRole.USER, status=MessageStatus.AWAITING_CONFIRMATION
        ).first()
        if pending is None:
            raise Http404(ERROR_NOT_PENDING)
        question_message = pending
    clock.lap("store_question")
    text = question_message.content
    decision = None
    gated = None
    try:
        # the route, search and egress events are written together when this block ends, before
        # anything is sent (one chain lock and commit instead of one per event)
        with audit_batch():
            decision = route(user=user, profile=profile, question=text)
            route_audit(actor=user, question=question_message, decision=decision)
            clock.lap("route")
            context = retrieve(
                user=user,
                question=text,
                knowledge_bases=authorization.knowledge_bases,
                passages=profile.passages,
                customer_id=conversation.customer_id,
            )
            clock.lap("retrieve")
            citations = citations_for(context.chunks)
            retrieval = {
                "knowledge_base_ids": [kb.pk for kb in authorization.knowledge_bases],
                "withheld_knowledge_bases": authorization.withheld_knowledge_bases,
                "memory_ids": [memory.memory_id for memory in context.memories],
                "customer_id": context.customer.customer_id if context.customer is not None else None,
                "customer_withheld": conversation.customer_id is not None and context.customer is None,
            }
            parts = build(
                profile=profile,
                history=history_for(conversation=conversation, before=question_message),
                context=context,
                question=text,
            )
            clock.lap("build")
            gated = egress(
                user=user, conversation=conversation, question=question_message, decision=decision, parts=parts,
                sensitive=profile.sensitive,
            )  # fmt: skip
            clock.lap("egress")
        clock.lap("audit")
        retrieval["stages_ms"] = clock.laps
    except EgressBlocked as blocked:
        answer = answer_store(
            actor=user, question=question_message, text="", status=MessageStatus.BLOCKED, error=str(blocked),
            decision=decision,
        )  # fmt: skip
        return Finished(question_message, answer)
    except Exception as error:  # noqa: BLE001 - fail closed: nothing is sent, the user is told why
        message = _user_facing(error)
        if message is None:
            logger.exception("assistant: preparing question %s failed", question_message.pk)
        else:
            budget_refusal_audit(actor=user, question=question_message, message=message)
        answer = answer_store(
            actor=user, question=question_message, text="", status=MessageStatus.ERROR,
            error=message or ERROR_PREPARE_FAILED, decision=decision,
        )  # fmt: skip
        return Finished(question_message, answer)
    if preview_required(user=user, gated=gated):
        confirmed_sha = question_message.manifest.get("preview", {}).get("sha256")
        if confirm_question_id is None or confirmed_sha != gated.prompt_sha256:
            # First ask, or the prompt changed since the preview: show exactly what would leave now.
            return NeedsConfirmation(question_preview_store(actor=user, question=question_message, gated=gated,
                                                            decision=decision))  # fmt: skip
        question_confirm(actor=user, question=question_message)
    return Prepared(
        question=question_message,
        profile=profile,
        decision=decision,
        gated=gated,
        citations=citations,
        retrieval=retrieval,
    )


class _StageClock:
    """Milliseconds spent in each stage, kept with the answer (details panel, benchmark)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = round((now - self._last) * 1000, 2)
        self._last = now


def _user_facing(error: Exception) -> str | None:
    """Errors whose message is written for the user (budget refusals); None for unexpected failures."""
    budget_exceeded = _optional("portal.routing.services", "BudgetExceeded")
    if budget_exceeded is not None and isinstance(error, budget_exceeded):
        return str(error)
    return None


async def answer(
    *,
    user: Any,
    conversation: Conversation,
    question: str = "",
    confirm_question_id: int | None = None,
    authorization: Authorization | None = None,
) -> AsyncIterator[AnswerEvent]:
    """The main flow, streamed: QuestionStored, then AnswerDelta pieces (or PreviewReady), then AnswerStored.

    Raises PermissionDenied / Http404 / ValidationError before anything is stored when the user may not ask.
    """
    started = time.perf_counter()
    step = await db_phase(
        prepare,
        user=user,
        conversation=conversation,
        question=question,
        confirm_question_id=confirm_question_id,
        authorization=authorization,
    )
    prepare_ms = (time.perf_counter() - started) * 1000
    if isinstance(step, NeedsConfirmation):
        yield QuestionStored(step.question)
        yield PreviewReady(step.question)
        return
    yield QuestionStored(step.question)
    if isinstance(step, Finished):
        yield AnswerStored(step.answer, {"prepare_ms": prepare_ms})
        return

    restorer = step.gated.restorer()
    shown: list[str] = []
    outcome: Any = None
    waited = 0.0
    stream = call(user=user, prepared=step)
    first_piece = True
    try:
        while True:
            asked = time.perf_counter()
            try:
                item = await stream.__anext__()
            except StopAsyncIteration:
                break
            finally:
                waited += time.perf_counter() - asked
            if is_outcome(item):
                outcome = item
                continue
            if first_piece:
                first_piece = False
                # routing read its catalog before the first piece; do not hold that connection while streaming
                await sync_to_async(release_connection)()
            if getattr(item, "reset", False):
                # The model was cut off and the next candidate starts over: drop what was shown.
                shown.clear()
                restorer = step.gated.restorer()
                yield AnswerDelta("", reset=True)
                continue
            piece = restorer.feed(item.text)
            if piece:
                shown.append(piece)
                yield AnswerDelta(piece)
        tail = restorer.finish()
        if tail:
            shown.append(tail)
            yield AnswerDelta(tail)
    except (GeneratorExit, asyncio.CancelledError):
        # The reader went away (page closed): keep what was shown, marked as interrupted.
        await _close_quietly(stream)
        await db_phase(
            answer_store,
            actor=user, question=step.question, text="".join(shown), status=MessageStatus.ERROR,
            error=ERROR_INTERRUPTED, decision=step.decision, gated=step.gated, citations=step.citations,
            usage=outcome_as_usage(outcome) if outcome is not None else {"outcome": "error"},
            retrieval=step.retrieval,
        )  # fmt: skip
        raise
    except Exception:  # noqa: BLE001 - routing should not raise; if it does the user still gets an answer
        logger.exception("assistant: the model stream failed for question %s", step.question.pk)
    await _close_quietly(stream)
    text = "".join(shown)
    local_ms = (time.perf_counter() - started - waited) * 1000
    usage: dict[str, Any] = outcome_as_usage(outcome) if outcome is not None else {"outcome": "error"}
    usage["local_overhead_ms"] = round(local_ms, 2)
    usage["stages_ms"] = step.retrieval.get("stages_ms", {})
    if outcome is not None and outcome.outcome == "success":
        status, error = MessageStatus.COMPLETE, ""
    else:
        status = MessageStatus.ERROR
        error = (outcome.error if outcome is not None else "") or ERROR_CALL_FAILED
    stored_at = time.perf_counter()
    message = await db_phase(
        answer_store,
        actor=user,
        question=step.question,
        text=text,
        status=status,
        error=error,
        decision=step.decision,
        gated=step.gated,
        citations=step.citations,
        usage=usage,
        retrieval=step.retrieval,
    )
    store_ms = (time.perf_counter() - stored_at) * 1000
    total_ms = (time.perf_counter() - started) * 1000
    yield AnswerStored(
        message,
        {
            "prepare_ms": prepare_ms,
            "store_ms": store_ms,
            "provider_wait_ms": waited * 1000,
            "total_ms": total_ms,
            "overhead_ms": local_ms + store_ms,
            **{f"stage_{name}_ms": value for name, value in step.retrieval.get("stages_ms", {}).items()},
        },
    )


async def _close_quietly(stream: AsyncIterator[Any]) -> None:
    close = getattr(stream, "aclose", None)
    if close is None:
        return
    try:
        await close()
    except Exception:  # noqa: BLE001 - closing a finished or failed stream must not hide the answer
        logger.debug("assistant: closing the model stream failed", exc_info=True)
