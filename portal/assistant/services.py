"""The assistant's writes: conversations, questions, previews and answers, each audited in its own transaction.

The ask flow that calls them, stage by stage, is `portal.assistant.pipeline`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404

from audit.models import Outcome
from audit.privacy import text_fingerprint
from audit.services import audit
from governance.gate import GatedPrompt
from portal.assistant.models import AssistantProfile, Conversation, Message, MessageRole, MessageStatus
from portal.assistant.selectors import ERROR_NOT_PENDING, profile_is_usable, require_assistant_use
from portal.customers.selectors import customer_require_visible
from portal.routing.types import RouteDecision

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from portal.assistant.pipeline import Citation

DEFAULT_TITLE = "New conversation"
TITLE_LENGTH = 60
ERROR_EMPTY_QUESTION = "Type a question first."
ERROR_EDIT_ELSEWHERE = "That question belongs to another conversation."
ERROR_TITLE = "Give the conversation a title (at most 200 characters)."
ERROR_RATING = "Rate with thumbs up or thumbs down."


# ---- conversations --------------------------------------------------------------------------------------
@transaction.atomic
def conversation_create(*, actor: User, profile: AssistantProfile, customer_id: int | None = None) -> Conversation:
    require_assistant_use(user=actor)
    if not profile_is_usable(user=actor, profile_id=profile.pk):
        raise Http404("No such assistant profile.")
    if customer_id is not None:
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
def conversation_rename(*, actor: User, conversation: Conversation, title: str) -> Conversation:
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
def conversation_delete(*, actor: User, conversation: Conversation) -> None:
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
def message_feedback(*, actor: User, message: Message, rating: int, comment: str = "") -> Message:
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


# ---- decisions of the flow ------------------------------------------------------------------------------
def route_audit(*, actor: User, question: Message, decision: RouteDecision) -> None:
    """The route decision and its reason are an audited decision of their own (a downgrade too)."""
    details = decision.as_dict()
    audit(actor=actor, action="routing.route_chosen", target=question, details=details)
    if decision.budget_note:
        audit(actor=actor, action="routing.budget_downgraded", target=question, details=details)


def budget_refusal_audit(*, actor: User, question: Message, message: str) -> None:
    audit(
        actor=actor,
        action="routing.budget_refused",
        target=question,
        outcome=Outcome.DENIED,
        details={"message": message},
    )


# ---- questions and answers -------------------------------------------------------------------------------
@transaction.atomic
def question_store(
    *, actor: User, conversation: Conversation, text: str, edited_from: Message | None = None
) -> Message:
    """Store a question (`edited_from`: the earlier question of this conversation it is an edited copy of)."""
    text = text.strip()
    if not text:
        raise ValidationError(ERROR_EMPTY_QUESTION)
    if edited_from is not None and edited_from.conversation_id != conversation.pk:
        raise ValidationError(ERROR_EDIT_ELSEWHERE)
    message = Message(conversation=conversation, role=MessageRole.USER, content=text, edited_from=edited_from)
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
        details={
            "conversation_id": conversation.pk,
            "profile_id": conversation.profile_id,
            "chars": len(text),
            **({"edited_from_id": edited_from.pk} if edited_from is not None else {}),
        },
    )
    return message


def answer_regenerate_requested(*, actor: User, question: Message) -> None:
    """The user asks for a new attempt at the answer to `question`; the earlier attempts are kept."""
    audit(
        actor=actor,
        action="assistant.answer_regenerated",
        target=question,
        details={"conversation_id": question.conversation_id, "earlier_attempts": question.answers.count()},
    )


def _title_from(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


@transaction.atomic
def question_preview_store(*, actor: User, question: Message, gated: GatedPrompt, decision: RouteDecision) -> Message:
    question.status = MessageStatus.AWAITING_CONFIRMATION
    question.manifest = {"preview": preview_of(gated), "egress": gated.manifest}
    question.route = decision.as_dict()
    question.save(update_fields=["status", "manifest", "route"])
    audit(
        actor=actor,
        action="assistant.preview_shown",
        target=question,
        details={"prompt_sha256": gated.prompt_sha256, "destinations": list(gated.destinations)},
    )
    return question


def preview_of(gated: GatedPrompt) -> dict[str, Any]:
    """Exactly what would leave, and to where, as stored with a question waiting for confirmation."""
    return {
        "sha256": gated.prompt_sha256,
        "messages": [dict(message) for message in gated.messages],
        "destinations": list(gated.destinations),
    }


@transaction.atomic
def question_confirm(*, actor: User, question: Message) -> Message:
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
def question_cancel(*, actor: User, question: Message) -> Message:
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
    actor: User,
    question: Message,
    text: str,
    status: str = MessageStatus.COMPLETE,
    error: str = "",
    decision: RouteDecision | None = None,
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
        route=decision.as_dict() if decision is not None else {},
        manifest=gated.manifest if gated is not None else {},
        usage=usage or {},
    )
    message.full_clean(exclude=["conversation", "reply_to"])  # both are loaded objects of this flow
    message.save()
    conversation.save(update_fields=["updated_at"])
    usage = usage or {}
    outcome = {
        MessageStatus.COMPLETE: Outcome.SUCCESS,
        MessageStatus.STOPPED: Outcome.SUCCESS,  # the user's choice; `status` in the details says "stopped"
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
