"""The ask pipeline: one assistant question, in the nine stages of DESIGN.md ("The main flow").

`answer()` reads top to bottom:

    1 authorize  authorize()   may this user ask with this profile; which of its knowledge bases may they read
    2 route      route()       task type -> tier -> ordered candidate models (routing.route_decide)
    3 retrieve   retrieve()    permission-filtered passages, memories, customer context and predictions
    4 build      build()       the prompt as parts the gate judges one by one
    5 egress     egress()      the governance gate: classify, apply the role's policy, pseudonymize, seal
    6 call       call()        the cleared models, streamed (routing.model_stream); usage recorded per attempt
    7 restore    restore()     placeholders re-identified, also when split across stream pieces
    8 store      services.answer_store()   answer, citations, route, manifest and usage, all local ...
    9 audit      ... and its audit event, in the same transaction

Stages 1-5 run in one bounded database phase (`prepare()`, synchronous: database and local models); nothing
leaves the server before stage 6. The question is stored before anything is sent (`services.question_store`),
so a provider outage leaves it in the conversation with a clear error answer beside it. The writes are in
`services.py`, the reads in `selectors.py`; this module only decides the order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404

from audit.services import audit_batch
from governance import gate
from governance.gate import EgressBlocked, GatedPrompt, PromptPart
from governance.selectors import labels_sent_to_cloud
from knowledge.selectors import RetrievedChunk, knowledge_bases_for_user, knowledge_bases_readable_among
from knowledge.selectors import retrieve as knowledge_retrieve
from knowledge.selectors import retrieve_ahead as knowledge_retrieve_ahead
from portal.assistant import selectors, services
from portal.assistant.db import db_phase, release_connection
from portal.assistant.models import AssistantProfile, Conversation, Message, MessageStatus
from portal.assistant.selectors import ERROR_PROFILE_WITHDRAWN, profile_is_usable, require_assistant_use
from portal.core.access import ObjectHidden
from portal.core.parallel import submit_on_own_connection
from portal.customers.selectors import CustomerContext, customer_context
from portal.memory.selectors import RetrievedMemory, memory_retrieve
from portal.ml.prompt import marks_for, passage_part
from portal.ml.selectors import customer_prediction_fields
from portal.routing.router import Deployment
from portal.routing.services import BudgetExceeded, deployments_enabled, model_stream, route_decide
from portal.routing.types import CallOutcome, RouteDecision, StreamDelta

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from knowledge.models import KnowledgeBase

logger = logging.getLogger(__name__)

HISTORY_MESSAGES = 6
HISTORY_CHARS = 2000
MEMORY_ITEMS = 4
SYSTEM_PROMPT = (
    "You are the assistant of this organisation's staff portal. When numbered source passages are given, "
    "answer from them and cite each passage you use as [n] with its number. If they do not contain the "
    "answer, say so plainly. Answer in the language of the question."
)
ERROR_PREPARE_FAILED = (
    "The assistant could not prepare this question (nothing was sent). Please try again; if it keeps "
    "failing, tell an administrator."
)
ERROR_CALL_FAILED = "The model could not be reached; your question is saved. Please try again later."
ERROR_NO_DESTINATION = "Governance did not clear this question for any configured model; nothing was sent."
ERROR_STOPPED = "Stopped before the answer was complete: what came until then is kept."


# ---- what the stages hand each other ----------------------------------------------------------------------
@dataclass(frozen=True)
class Authorization:
    """Stage 1's answer: the profile, and the knowledge bases it searches that this user may read."""

    profile: AssistantProfile
    knowledge_bases: tuple[KnowledgeBase, ...]
    withheld_knowledge_bases: int  # profile knowledge bases this user may not read (not searched)


@dataclass(frozen=True)
class RetrievedContext:
    """Stage 3's answer: everything local the prompt may quote."""

    chunks: tuple[RetrievedChunk, ...] = ()
    memories: tuple[RetrievedMemory, ...] = ()
    customer: CustomerContext | None = None
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
class RetrievalSummary:
    """What was searched and found, by id, kept with the answer and its audit event."""

    knowledge_base_ids: list[int]
    withheld_knowledge_bases: int
    memory_ids: list[int]
    customer_id: int | None
    customer_withheld: bool  # the conversation is about a customer this user may no longer see
    stages_ms: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(
        cls, authorization: Authorization, context: RetrievedContext, *, conversation: Conversation,
        stages_ms: dict[str, float],
    ) -> RetrievalSummary:  # fmt: skip
        return cls(
            knowledge_base_ids=[kb.pk for kb in authorization.knowledge_bases],
            withheld_knowledge_bases=authorization.withheld_knowledge_bases,
            memory_ids=[memory.memory_id for memory in context.memories],
            customer_id=context.customer.customer_id if context.customer is not None else None,
            customer_withheld=conversation.customer_id is not None and context.customer is None,
            stages_ms=stages_ms,
        )

    def as_details(self) -> dict[str, Any]:
        return {
            "knowledge_base_ids": self.knowledge_base_ids,
            "withheld_knowledge_bases": self.withheld_knowledge_bases,
            "memory_ids": self.memory_ids,
            "customer_id": self.customer_id,
            "customer_withheld": self.customer_withheld,
            "stages_ms": self.stages_ms,
        }


@dataclass(frozen=True)
class Prepared:
    """Stages 1-5 done: everything needed to call the model; nothing has left the server yet."""

    question: Message
    profile: AssistantProfile
    decision: RouteDecision
    gated: GatedPrompt
    citations: tuple[Citation, ...]
    retrieval: RetrievalSummary
    # the catalog's deployments, read in the database phase: the stream then starts without a read of its own
    deployments: Mapping[str, Deployment] | None = None


@dataclass(frozen=True)
class Finished:
    """The pipeline stopped before the call (block, budget, failure): the answer says why."""

    question: Message
    answer: Message


@dataclass(frozen=True)
class NeedsConfirmation:
    """The role must see what would leave before it is sent (the preview is stored with the question)."""

    question: Message


@dataclass
class Streamed:
    """What stages 6 and 7 leave for stage 8: the text shown so far and the call's outcome."""

    shown: list[str] = field(default_factory=list)
    outcome: CallOutcome | None = None
    provider_wait: float = 0.0  # seconds spent waiting for the model's next piece

    @property
    def text(self) -> str:
        return "".join(self.shown)


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


# ---- the flow ---------------------------------------------------------------------------------------------
async def answer(
    *,
    user: User,
    conversation: Conversation,
    question: str = "",
    confirm_question_id: int | None = None,
    regenerate_question_id: int | None = None,
    edited_from: Message | None = None,
    authorization: Authorization | None = None,
) -> AsyncIterator[AnswerEvent]:
    """The main flow, streamed: QuestionStored, then AnswerDelta pieces (or PreviewReady), then AnswerStored.

    One of: a new `question` (an edited copy of `edited_from`, if given), the confirmation of a previewed
    question, or a new attempt at the answer of the latest question (`regenerate_question_id`; the earlier
    attempts stay beside it). Raises PermissionDenied / Http404 / ValidationError before anything is stored
    when the user may not ask.
    """
    started = time.perf_counter()
    # stages 1-5: authorize, route, retrieve, build, egress (one database phase; nothing leaves the server)
    step = await db_phase(
        prepare,
        user=user,
        conversation=conversation,
        question=question,
        confirm_question_id=confirm_question_id,
        regenerate_question_id=regenerate_question_id,
        edited_from=edited_from,
        authorization=authorization,
    )
    prepare_ms = (time.perf_counter() - started) * 1000
    yield QuestionStored(step.question)
    if isinstance(step, NeedsConfirmation):
        yield PreviewReady(step.question)
        return
    if isinstance(step, Finished):
        yield AnswerStored(step.answer, {"prepare_ms": prepare_ms})
        return

    # stages 6 and 7: call the cleared models, restore the placeholders in what they stream
    streamed = Streamed()
    deltas = restore(call(user=user, prepared=step), gated=step.gated, streamed=streamed)
    first_piece = True
    try:
        async for delta in deltas:
            if first_piece:
                first_piece = False
                # routing read its catalog before the first piece; do not hold that connection while streaming
                await sync_to_async(release_connection)()
            yield delta
    except (GeneratorExit, asyncio.CancelledError):
        # The reader stopped the answer or went away (page closed): closing the stream ends the provider
        # call; what was shown is kept, marked as stopped.
        await _close_quietly(deltas)
        await db_phase(store, user=user, prepared=step, streamed=streamed, stopped=True)
        raise
    except Exception:  # noqa: BLE001 - routing should not raise; if it does the user still gets an answer
        logger.exception("assistant: the model stream failed for question %s", step.question.pk)
    await _close_quietly(deltas)

    # stages 8 and 9: store the answer and audit it, in one transaction
    local_ms = (time.perf_counter() - started - streamed.provider_wait) * 1000
    stored_at = time.perf_counter()
    message = await db_phase(store, user=user, prepared=step, streamed=streamed, local_overhead_ms=local_ms)
    store_ms = (time.perf_counter() - stored_at) * 1000
    yield AnswerStored(message, _timings(step, streamed, started=started, prepare_ms=prepare_ms, local_ms=local_ms,
                                         store_ms=store_ms))  # fmt: skip


def prepare(
    *,
    user: User,
    conversation: Conversation,
    question: str = "",
    confirm_question_id: int | None = None,
    regenerate_question_id: int | None = None,
    edited_from: Message | None = None,
    authorization: Authorization | None = None,
) -> Prepared | Finished | NeedsConfirmation:
    """Stages 1-5 (synchronous: database and local models). Nothing leaves the server here.

    `authorization`: the result of `authorize()` for this user and conversation when the caller (the view)
    has just computed it in the same request.
    """
    clock = StageClock()
    if authorization is None or authorization.profile.pk != conversation.profile_id:
        authorization = authorize(user=user, conversation=conversation)
    if question:
        # the question's embedding runs on the other core while it is stored and routed (after the check:
        # no work for a question that may not be asked; started before it, it took as long again from
        # the check's own statements, which then shared the cores and the GIL with it)
        knowledge_retrieve_ahead(question)
    profile = authorization.profile
    clock.lap("authorize")
    if confirm_question_id is not None:
        question_message = selectors.pending_question_get(conversation=conversation, question_id=confirm_question_id)
    elif regenerate_question_id is not None:
        question_message = selectors.regenerable_question_get(conversation=conversation,
                                                              question_id=regenerate_question_id)  # fmt: skip
        services.answer_regenerate_requested(actor=user, question=question_message)
    else:
        question_message = services.question_store(actor=user, conversation=conversation, text=question,
                                                   edited_from=edited_from)  # fmt: skip
    clock.lap("store_question")
    text = question_message.content
    decision: RouteDecision | None = None
    try:
        # the route, search and egress events are written together when this block ends, before
        # anything is sent (one chain lock and commit instead of one per event)
        with audit_batch():
            decision = route(user=user, profile=profile, question=text)
            services.route_audit(actor=user, question=question_message, decision=decision)
            clock.lap("route")
            read_history = partial(selectors.history_for, conversation=conversation, limit=HISTORY_MESSAGES,
                                   before=question_message)  # fmt: skip
            history_soon = submit_on_own_connection(read_history)  # beside the searches, where a pool allows
            context = retrieve(
                user=user,
                question=text,
                knowledge_bases=authorization.knowledge_bases,
                passages=profile.passages,
                customer_id=conversation.customer_id,
            )
            clock.lap("retrieve")
            history = history_soon.result() if history_soon is not None else read_history()
            parts = build(profile=profile, history=history, context=context, question=text)
            clock.lap("build")
            gated = egress(user=user, conversation=conversation, question=question_message, decision=decision,
                           parts=parts, sensitive=profile.sensitive)  # fmt: skip
            clock.lap("egress")
        clock.lap("audit")
    except Exception as error:  # noqa: BLE001 - fail closed: nothing is sent, the user is told why
        return Finished(question_message, _refusal_store(user=user, question=question_message, decision=decision,
                                                         error=error))  # fmt: skip
    if preview_required(user=user, gated=gated) and not _confirm_if_previewed(user, question_message, gated,
                                                                            confirm_question_id):  # fmt: skip
        # First ask, or the prompt changed since the preview: show exactly what would leave now.
        return NeedsConfirmation(services.question_preview_store(actor=user, question=question_message, gated=gated,
                                                                 decision=decision))  # fmt: skip
    return Prepared(
        question=question_message,
        profile=profile,
        decision=decision,
        gated=gated,
        citations=citations_for(context.chunks),
        retrieval=RetrievalSummary.of(authorization, context, conversation=conversation, stages_ms=clock.laps),
        deployments=deployments_enabled(),
    )


def _confirm_if_previewed(user: User, question: Message, gated: GatedPrompt, confirm_question_id: int | None) -> bool:
    """Confirm the question when the user confirmed its preview and what would leave now is exactly what they
    saw; False when the preview must be shown (first ask, or the prompt changed since)."""
    confirmed_sha = question.manifest.get("preview", {}).get("sha256")
    if confirm_question_id is None or confirmed_sha != gated.prompt_sha256:
        return False
    services.question_confirm(actor=user, question=question)
    return True


def _refusal_store(*, user: User, question: Message, decision: RouteDecision | None, error: Exception) -> Message:
    """The answer when stages 2-5 stopped the question: blocked by governance, refused by the budget, or
    an unexpected failure (logged; the user sees a generic message)."""
    if isinstance(error, EgressBlocked):
        return services.answer_store(actor=user, question=question, text="", status=MessageStatus.BLOCKED,
                                     error=str(error), decision=decision)  # fmt: skip
    if isinstance(error, BudgetExceeded):  # its message is written for the user
        services.budget_refusal_audit(actor=user, question=question, message=str(error))
        message = str(error)
    else:
        logger.exception("assistant: preparing question %s failed", question.pk, exc_info=error)
        message = ERROR_PREPARE_FAILED
    return services.answer_store(actor=user, question=question, text="", status=MessageStatus.ERROR, error=message,
                                 decision=decision)  # fmt: skip


# ---- stage 1: authorize ----------------------------------------------------------------------------------
def authorize(*, user: User, conversation: Conversation) -> Authorization:
    """May this user ask with this conversation's profile, and which of its knowledge bases may they read?"""
    require_assistant_use(user=user)
    if conversation.owner_id != user.pk:
        raise ObjectHidden("No such conversation.")
    if not profile_is_usable(user=user, profile_id=conversation.profile_id):
        raise PermissionDenied(ERROR_PROFILE_WITHDRAWN)
    profile = conversation.profile
    wanted = selectors.profile_knowledge_base_ids(profile=profile)
    attached = _attachments_base(user=user, conversation=conversation)
    if profile.all_readable_knowledge:
        # every base this user may read whose passages may leave under their policy, and the chosen ones
        # whatever their label: a confidential or local-only base joins a question only when chosen, so that
        # reading one does not keep every answer on the offline model
        sendable = Q(classification__in=labels_sent_to_cloud(user=user)) | Q(pk__in=wanted)
        readable = tuple(knowledge_bases_for_user(user=user).filter(sendable).order_by("pk"))
        readable_ids = {kb.pk for kb in readable}
        return Authorization(
            profile=profile,
            knowledge_bases=readable + attached,
            withheld_knowledge_bases=len([pk for pk in wanted if pk not in readable_ids]),
        )
    readable = tuple(knowledge_bases_readable_among(user=user, knowledge_base_ids=wanted))
    return Authorization(
        profile=profile, knowledge_bases=readable + attached, withheld_knowledge_bases=len(wanted) - len(readable)
    )


def _attachments_base(*, user: User, conversation: Conversation) -> tuple[KnowledgeBase, ...]:
    """The conversation's own files (an unlisted base no list offers), searched by its questions alone; the
    caller has checked that the user owns the conversation, and the base's permissions are the owner's."""
    if conversation.attachments_base_id is None:
        return ()
    bases = knowledge_bases_for_user(user=user, include_unlisted=True).filter(pk=conversation.attachments_base_id)
    return tuple(bases)


# ---- stage 2: route --------------------------------------------------------------------------------------
def route(*, user: User, profile: AssistantProfile, question: str) -> RouteDecision:
    """Task type (fixed by the profile, or classified locally) -> tier -> ordered candidate models."""
    return route_decide(user=user, task_type=profile.task_type or None, question=question)


# ---- stage 3: retrieve -----------------------------------------------------------------------------------
def retrieve(
    *,
    user: User,
    question: str,
    knowledge_bases: Sequence[KnowledgeBase],
    passages: int = 6,
    customer_id: int | None = None,
) -> RetrievedContext:
    """Permission-filtered search of the profile's knowledge bases, plus memory and customer context."""
    chunks: tuple[RetrievedChunk, ...] = ()
    memory_search = partial(memory_retrieve, user=user, query=question, customer_id=customer_id, k=MEMORY_ITEMS)
    # the memory search runs on a connection of its own beside the knowledge search, where a pool allows
    memories_soon = submit_on_own_connection(memory_search) if knowledge_bases else None
    if knowledge_bases:
        chunks = tuple(knowledge_retrieve(user=user, query=question, knowledge_bases=knowledge_bases, k=passages))
    memories = tuple(memories_soon.result() if memories_soon is not None else memory_search())
    customer: CustomerContext | None = None
    if customer_id is not None:
        try:
            customer = customer_context(user=user, customer_id=customer_id)
        except (Http404, PermissionDenied):
            # The record was restricted, or the user's role changed, since the conversation began: answer
            # without it (the retrieval details say so) rather than fail every later question.
            customer = None
    predictions: dict[str, str] = {}
    if customer is not None:
        predictions = customer_prediction_fields(user=user, customer_id=customer.customer_id)
    return RetrievedContext(chunks=chunks, memories=memories, customer=customer, customer_predictions=predictions)


def citations_for(chunks: Sequence[RetrievedChunk]) -> tuple[Citation, ...]:
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


# ---- stage 4: build --------------------------------------------------------------------------------------
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
    marks = marks_for(context.chunks) if context.chunks else {}  # passages the local models flagged
    for number, chunk in enumerate(context.chunks, start=1):
        pages = f", {chunk.pages_label}" if chunk.pages_label else ""
        text = f"[{number}] Source: {chunk.document_title}{pages}\n{chunk.text}"
        source: dict[str, Any] = {
            "citation": number,
            "chunk_id": chunk.chunk_id,
            "document_id": chunk.document_id,
            "knowledge_base_id": chunk.knowledge_base_id,
            "classification": chunk.classification,
        }
        if chunk.chunk_id in marks:
            text, source = passage_part(text, source, marks[chunk.chunk_id])
        parts.append(PromptPart(kind="chunk", text=text, source=source))
    for memory in context.memories:
        parts.append(
            PromptPart(
                kind="memory",
                text=f"Remembered ({memory.kind}): {memory.text}",
                source={
                    "memory_id": memory.memory_id,
                    "scope": memory.scope,
                    "sensitivity": memory.sensitivity,
                    # memories carry the same labels as knowledge bases; the gate applies the label rules to both
                    "classification": memory.sensitivity,
                    "customer_id": memory.customer_id,
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
    user: User,
    conversation: Conversation,
    question: Message,
    decision: RouteDecision,
    parts: Sequence[PromptPart],
    sensitive: bool = False,
) -> GatedPrompt:
    """The governance gate decides what of the prompt may leave, and to which of the candidates; it audits
    its decision itself, about this question. `sensitive`: the profile is marked sensitive, so every
    personal value is at least abstracted."""
    gated = gate.egress_gate(
        user=user,
        conversation_key=f"assistant-conversation-{conversation.pk}",
        destinations=decision.candidates,
        parts=parts,
        subject=("assistant.message", question.pk),
        sensitive=sensitive,
    )
    if not gated.destinations:
        raise EgressBlocked(ERROR_NO_DESTINATION)
    return gated


def preview_required(*, user: User, gated: GatedPrompt | None = None) -> bool:
    """Whether the user must see what would leave before it is sent.

    With the gated prompt, the policy the gate just applied decides (the same version and roles);
    without it, the policy in force for the user's roles. Unknown: yes, the safe side.
    """
    if gated is not None and "preview_before_send" in gated.manifest:
        return bool(gated.manifest["preview_before_send"])
    return bool(gate.preview_required(user))


# ---- stage 6: call ---------------------------------------------------------------------------------------
def call(*, user: User, prepared: Prepared) -> AsyncIterator[StreamDelta | CallOutcome]:
    """The model's stream (StreamDelta pieces, then exactly one CallOutcome); routing never raises on faults."""
    return model_stream(
        user=user,
        gated=prepared.gated,
        decision=prepared.decision,
        assistant_profile_id=prepared.profile.pk,
        temperature=prepared.profile.temperature,
        max_tokens=prepared.profile.max_tokens,
        deployments=prepared.deployments,
    )


# ---- stage 7: restore ------------------------------------------------------------------------------------
async def restore(
    stream: AsyncIterator[StreamDelta | CallOutcome], *, gated: GatedPrompt, streamed: Streamed
) -> AsyncIterator[AnswerDelta]:
    """The model's pieces with the gate's placeholders put back (also when one is split across pieces).

    What was shown and the call's outcome are kept in `streamed` for the store stage, so an answer the
    reader leaves halfway is stored as far as it got. A reset (the model was cut off and the next candidate
    starts over) drops what was shown and starts a fresh restorer.
    """
    restorer = gated.restorer()
    try:
        while True:
            asked = time.perf_counter()
            try:
                item = await anext(stream)
            except StopAsyncIteration:
                break
            finally:
                streamed.provider_wait += time.perf_counter() - asked
            if isinstance(item, CallOutcome):
                streamed.outcome = item
                continue
            if item.reset:
                streamed.shown.clear()
                restorer = gated.restorer()
                yield AnswerDelta("", reset=True)
                continue
            piece = restorer.feed(item.text)
            if piece:
                streamed.shown.append(piece)
                yield AnswerDelta(piece)
        tail = restorer.finish()
        if tail:
            streamed.shown.append(tail)
            yield AnswerDelta(tail)
    finally:
        await _close_quietly(stream)


def outcome_as_usage(outcome: CallOutcome) -> dict[str, Any]:
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


# ---- stages 8 and 9: store and audit ---------------------------------------------------------------------
def store(
    *,
    user: User,
    prepared: Prepared,
    streamed: Streamed,
    stopped: bool = False,
    local_overhead_ms: float | None = None,
) -> Message:
    """The answer as far as it got, with its route, manifest, usage and citations; `answer_store` audits it
    in the same transaction."""
    outcome = streamed.outcome
    usage: dict[str, Any] = outcome_as_usage(outcome) if outcome is not None else {"outcome": "error"}
    if stopped:
        status, error = MessageStatus.STOPPED, ERROR_STOPPED
    else:
        usage["local_overhead_ms"] = round(local_overhead_ms or 0.0, 2)
        usage["stages_ms"] = prepared.retrieval.stages_ms
        if outcome is not None and outcome.outcome == "success":
            status, error = MessageStatus.COMPLETE, ""
        else:
            status, error = MessageStatus.ERROR, (outcome.error if outcome is not None else "") or ERROR_CALL_FAILED
    return services.answer_store(
        actor=user,
        question=prepared.question,
        text=streamed.text,
        status=status,
        error=error,
        decision=prepared.decision,
        gated=prepared.gated,
        citations=prepared.citations,
        usage=usage,
        retrieval=prepared.retrieval.as_details(),
    )


# ---- helpers ----------------------------------------------------------------------------------------------
def _timings(
    step: Prepared, streamed: Streamed, *, started: float, prepare_ms: float, local_ms: float, store_ms: float
) -> dict[str, float]:
    """Where the time of one answer went (the chat's details panel, the benchmark)."""
    return {
        "prepare_ms": prepare_ms,
        "store_ms": store_ms,
        "provider_wait_ms": streamed.provider_wait * 1000,
        "total_ms": (time.perf_counter() - started) * 1000,
        "overhead_ms": local_ms + store_ms,
        **{f"stage_{name}_ms": value for name, value in step.retrieval.stages_ms.items()},
    }


class StageClock:
    """Milliseconds spent in each stage, kept with the answer (details panel, benchmark)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = round((now - self._last) * 1000, 2)
        self._last = now


async def _close_quietly(stream: AsyncIterator[Any]) -> None:
    close = getattr(stream, "aclose", None)
    if close is None:
        return
    try:
        await close()
    except Exception:  # noqa: BLE001 - closing a finished or failed stream must not hide the answer
        logger.debug("assistant: closing the model stream failed", exc_info=True)
