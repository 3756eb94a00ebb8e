"""The assistant's writes: conversations, questions, previews and answers, each audited in its own transaction.

The ask flow that calls them, stage by stage, is `portal.assistant.pipeline`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404
from guardian.shortcuts import assign_perm, get_group_perms, get_user_perms, remove_perm

from audit.admin import Snapshot, change_details, snapshot
from audit.models import Outcome
from audit.privacy import text_fingerprint
from audit.services import audit
from governance.gate import GatedPrompt
from portal.assistant.export import ERROR_EXPORT_FORMAT, FORMATS
from portal.assistant.models import (
    AssistantProfile,
    CitationOpen,
    Conversation,
    Message,
    MessageRole,
    MessageStatus,
)
from portal.assistant.selectors import (
    ERROR_NOT_PENDING,
    USE_PROFILE,
    cited_source,
    knowledge_bases_for_profile_editor,
    profile_is_usable,
    require_assistant_use,
    require_profile_editing,
)
from portal.core.access import ObjectHidden
from portal.customers.selectors import customer_require_visible
from portal.routing.types import RouteDecision

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.core.files.uploadedfile import UploadedFile

    from knowledge.services import UploadResult
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
    conversations_purge([conversation.pk], actor=actor)  # its attached files' knowledge base too


# ---- attached files ---------------------------------------------------------------------------------------
ATTACHMENTS_BASE_NAME = "Files of conversation {conversation_id}"


@transaction.atomic
def conversation_attach(*, actor: User, conversation: Conversation, uploaded_file: UploadedFile[bytes]) -> UploadResult:
    """Attach a file to the conversation: a document of its own unlisted knowledge base, made on the first
    attachment and searched only by this conversation's questions.

    The file goes through knowledge's document_upload (the same checks, ingestion task and audit events as
    any upload). A refused file changes nothing (not even the base, on a first attachment): `document` is
    None and `error` says why.
    """
    from knowledge.services import document_upload, max_upload_bytes, upload_refusal

    if conversation.owner_id != actor.pk:
        raise ObjectHidden("No such conversation.")
    # The row lock makes two first attachments at once share one base instead of racing to create two.
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    filename, size = uploaded_file.name or "", int(uploaded_file.size or 0)
    data = None if size > max_upload_bytes() else uploaded_file.read()
    if conversation.attachments_base_id is None:
        refusal = upload_refusal(filename=filename, data=data, size=size)
        if refusal is not None:
            return _attachment_refused(actor=actor, conversation=conversation, filename=filename, error=refusal)
        _attachments_base_create(actor=actor, conversation=conversation)
    assert conversation.attachments_base is not None
    result = document_upload(actor=actor, knowledge_base=conversation.attachments_base, filename=filename,
                             data=data, size=size)  # fmt: skip
    if result.document is None:
        return _attachment_refused(actor=actor, conversation=conversation, filename=filename, error=result.error,
                                   result=result)  # fmt: skip
    audit(
        actor=actor,
        action="assistant.file_attached",
        target=conversation,
        # ids only: the file's name is typed text, which knowledge's own upload event keeps as a fingerprint
        details={
            "conversation_id": conversation.pk,
            "document_id": result.document.pk,
            "knowledge_base_id": conversation.attachments_base_id,
            "outcome": result.outcome,
        },
    )
    return result


def _attachments_base_create(*, actor: User, conversation: Conversation) -> None:
    from knowledge.services import knowledge_base_create

    # The owner gets the base's permissions (as any creator does): nobody else may read or change it.
    conversation.attachments_base = knowledge_base_create(
        actor=actor, name=ATTACHMENTS_BASE_NAME.format(conversation_id=conversation.pk), unlisted=True
    )
    conversation.save(update_fields=["attachments_base", "updated_at"])


def _attachment_refused(
    *, actor: User, conversation: Conversation, filename: str, error: str, result: UploadResult | None = None
) -> UploadResult:
    from knowledge.services import UploadResult

    audit(
        actor=actor,
        action="assistant.file_rejected",
        target=conversation,
        outcome=Outcome.FAILURE,
        details={"conversation_id": conversation.pk, **text_fingerprint(filename, name="filename"), "error": error},
    )
    return result or UploadResult(None, "rejected", filename=filename, error=error)


@transaction.atomic
def conversation_export(*, actor: User, conversation: Conversation, fmt: str) -> None:
    """Audit that the owner took a copy of the conversation away (a data access, like the customers export).

    Only ids, the format and how many messages: the title and the messages are typed or model text.
    """
    if fmt not in FORMATS:
        raise ValidationError(ERROR_EXPORT_FORMAT)
    audit(
        actor=actor,
        action="assistant.conversation_exported",
        target=conversation,
        details={"conversation_id": conversation.pk, "format": fmt, "messages": conversation.messages.count()},
    )


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


def citation_open(*, actor: User, message: Message, number: int) -> str:
    """The address of source `number` that the answer cited, recording (once per person) that they opened it
    from the answer: a signal for the retrieval ranker. Http404 for a number the answer did not cite. The
    caller has fetched `message` as one of the actor's own answers."""
    citation = cited_source(message=message, number=number)
    _, created = CitationOpen.objects.get_or_create(
        message=message, number=number, user=actor, defaults={"chunk_id": int(citation.get("chunk_id") or 0)}
    )
    if created:
        audit(
            actor=actor,
            action="assistant.citation_opened",
            target=message,
            details={
                "conversation_id": message.conversation_id,
                "number": number,
                "chunk_id": citation.get("chunk_id"),
                "document_id": citation.get("document_id"),
            },
        )
    return str(citation["url"])


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


# ---- profiles (the portal's profile screens; the site admin's are audited by its mixin) --------------------
PROFILE_FIELDS = (
    "name", "description", "instructions", "all_readable_knowledge", "task_type", "temperature", "max_tokens",
    "passages", "sensitive", "is_active",
)  # fmt: skip
ERROR_UNREADABLE_KNOWLEDGE_BASE = "You may only add knowledge bases you may read yourself."
ERROR_GRANTEE = "Choose a role or a user (one of the two)."
USE_PROFILE_CODENAME = "use_assistantprofile"


def _profile_snapshot(profile: AssistantProfile) -> Snapshot:
    # As the site admin records a profile: the name is a label an administrator chose (never personal); the
    # description and instructions are free text, so only named when they change; knowledge bases by id.
    return snapshot(profile, value_fields=("name",))


@transaction.atomic
def profile_save(*, actor: User, profile: AssistantProfile | None, data: Mapping[str, Any]) -> AssistantProfile:
    """Create (profile None) or change a profile from validated form data, audited with what changed.

    The editor attaches only knowledge bases they may read; those already on the profile that they may
    not read are kept as they are (they never saw them, so leaving them out is not a choice to drop them).
    """
    creating = profile is None
    require_profile_editing(user=actor, action="add" if creating else "change")
    readable = set(knowledge_bases_for_profile_editor(user=actor).values_list("pk", flat=True))
    chosen = {knowledge_base.pk for knowledge_base in data.get("knowledge_bases") or ()}
    if chosen - readable:
        raise PermissionDenied(ERROR_UNREADABLE_KNOWLEDGE_BASE)
    if profile is None:
        stored, before = AssistantProfile(), None
    else:  # the stored row, locked: the form may already have changed the instance it was given
        stored = AssistantProfile.objects.select_for_update().get(pk=profile.pk)
        before = _profile_snapshot(stored)
    for name in PROFILE_FIELDS:
        if name in data:
            setattr(stored, name, data[name])
    stored.full_clean()
    stored.save()
    kept = set() if before is None else set(stored.knowledge_bases.values_list("pk", flat=True)) - readable
    stored.knowledge_bases.set(sorted(chosen | kept))
    after = _profile_snapshot(stored)
    if before is None:
        details = {"object": stored.name, "fields": after.filled_text_fields(), "after": after.values}
        audit(actor=actor, action="assistant.profile_created", target=stored, details=details)
    elif before.changed_fields(after):
        audit(actor=actor, action="assistant.profile_changed", target=stored,
              details={"object": stored.name, **change_details(before, after)})  # fmt: skip
    return stored


def _grantee(group: Group | None, user: User | None) -> tuple[Group | User, dict[str, Any]]:
    """The role or the user, and how the trail names it: a role by name, a user by id only."""
    if (group is None) == (user is None):
        raise ValidationError(ERROR_GRANTEE)
    if group is not None:
        return group, {"role": group.name}
    assert user is not None
    return user, {"user_id": user.pk}


def _has_direct_use(grantee: Group | User, profile: AssistantProfile) -> bool:
    perms = get_group_perms(grantee, profile) if isinstance(grantee, Group) else get_user_perms(grantee, profile)
    return USE_PROFILE_CODENAME in perms


@transaction.atomic
def profile_grant(
    *, actor: User, profile: AssistantProfile, group: Group | None = None, user: User | None = None
) -> bool:
    """Let a role (each of its members) or one user use the profile. False when they already could."""
    require_profile_editing(user=actor, action="change")
    grantee, who = _grantee(group, user)
    if _has_direct_use(grantee, profile):
        return False
    assign_perm(USE_PROFILE, grantee, profile)
    audit(actor=actor, action="assistant.profile_access_granted", target=profile,
          details={"object": profile.name, **who})  # fmt: skip
    return True


@transaction.atomic
def profile_revoke(
    *, actor: User, profile: AssistantProfile, group: Group | None = None, user: User | None = None
) -> bool:
    """Take the direct grant away from a role or a user. False when there was none."""
    require_profile_editing(user=actor, action="change")
    grantee, who = _grantee(group, user)
    if not _has_direct_use(grantee, profile):
        return False
    remove_perm(USE_PROFILE, grantee, profile)
    audit(actor=actor, action="assistant.profile_access_revoked", target=profile,
          details={"object": profile.name, **who})  # fmt: skip
    return True
