"""Reads of the assistant: permission scoping happens in the query, never after it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nh3
from django.contrib.contenttypes.models import ContentType
from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchRank, SearchVector
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery, Window
from django.db.models.functions import RowNumber
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from guardian.shortcuts import get_objects_for_user

from portal.assistant.models import (
    AssistantProfile,
    CitationOpen,
    Conversation,
    Message,
    MessageRole,
    MessageStatus,
)
from portal.core.access import not_visible

USE_ASSISTANT = "governance.use_assistant"
USE_PROFILE = "assistant.use_assistantprofile"
ERROR_NO_ASSISTANT = "Your role may not use the assistant."
ERROR_PROFILE_WITHDRAWN = "You may no longer use the assistant profile of this conversation."

ERROR_NOT_PENDING = "This question is not waiting for confirmation."
ERROR_NO_SUCH_ANSWER = "No such answer."
ERROR_NOT_REGENERABLE = "Only the answer to the latest question can be asked for again."


def may_use_assistant(*, user: Any) -> bool:
    return bool(user.is_authenticated and user.is_active and user.has_perm(USE_ASSISTANT))


def require_assistant_use(*, user: Any) -> None:
    if not may_use_assistant(user=user):
        raise PermissionDenied(ERROR_NO_ASSISTANT)


def profiles_for_user(*, user: Any) -> QuerySet[AssistantProfile]:
    """Active profiles this user may use: granted to one of their roles or to them (guardian, in SQL)."""
    if not may_use_assistant(user=user):
        return AssistantProfile.objects.none()
    return get_objects_for_user(
        user, USE_PROFILE, klass=AssistantProfile.objects.filter(is_active=True), accept_global_perms=True
    ).order_by("name")


# Granted `use_assistantprofile` on this profile, to the user or to one of their roles (guardian's tables).
_PROFILE_GRANTED_SQL = """
SELECT EXISTS (
  SELECT 1 FROM assistant_assistantprofile profile
   WHERE profile.id = %(profile)s AND profile.is_active AND (
         %(everything)s
      OR EXISTS (SELECT 1 FROM guardian_userobjectpermission uop
                   JOIN auth_permission p ON p.id = uop.permission_id
                  WHERE uop.user_id = %(user)s AND uop.content_type_id = %(content_type)s
                    AND p.codename = %(codename)s AND uop.object_pk = profile.id::text)
      OR EXISTS (SELECT 1 FROM guardian_groupobjectpermission gop
                   JOIN auth_permission p ON p.id = gop.permission_id
                   JOIN auth_user_groups ug ON ug.group_id = gop.group_id
                  WHERE ug.user_id = %(user)s AND gop.content_type_id = %(content_type)s
                    AND p.codename = %(codename)s AND gop.object_pk = profile.id::text)))
"""


def profile_is_usable(*, user: Any, profile_id: int) -> bool:
    """Whether `profiles_for_user` holds this profile, in one plain statement: checked at every question,
    where building guardian's query cost more CPU than running it. Superusers and holders of the global
    permission use every active profile, as guardian's `accept_global_perms` has it."""
    if not may_use_assistant(user=user):
        return False
    everything = bool(user.is_superuser or user.has_perm(USE_PROFILE))
    params = {
        "profile": int(profile_id), "everything": everything, "user": user.pk,
        "content_type": ContentType.objects.get_for_model(AssistantProfile).pk,
        "codename": USE_PROFILE.split(".", 1)[1],
    }  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(_PROFILE_GRANTED_SQL, params)
        row = cursor.fetchone()
    return bool(row and row[0])


def profile_knowledge_base_ids(*, profile: AssistantProfile) -> list[int]:
    """The knowledge bases a profile searches (before the asking user's own read access is applied)."""
    return list(profile.knowledge_bases.values_list("pk", flat=True))


def profiles_for_management(*, user: Any) -> QuerySet[AssistantProfile]:
    if not user.has_perm("assistant.view_assistantprofile"):
        raise PermissionDenied("You may not manage assistant profiles.")
    return AssistantProfile.objects.prefetch_related("knowledge_bases").order_by("name")


PROFILE_PERMISSIONS = {"add": "assistant.add_assistantprofile", "change": "assistant.change_assistantprofile"}
ERROR_NO_PROFILE_PERMISSION = "You may not create or change assistant profiles."


def may_edit_profiles(*, user: Any, action: str = "change") -> bool:
    return bool(user.is_authenticated and user.is_active and user.has_perm(PROFILE_PERMISSIONS[action]))


def require_profile_editing(*, user: Any, action: str = "change") -> None:
    """403 for whoever may not create ("add") or change ("change") profiles."""
    if not may_edit_profiles(user=user, action=action):
        raise PermissionDenied(ERROR_NO_PROFILE_PERMISSION)


def profile_for_editing(*, user: Any, profile_id: int) -> AssistantProfile:
    """A profile, inactive ones included, for whoever may change profiles: 403 before any lookup (the
    permission is not per profile, so nothing about which ids exist is told to others), 404 for no such id."""
    require_profile_editing(user=user, action="change")
    profile = AssistantProfile.objects.prefetch_related("knowledge_bases").filter(pk=profile_id).first()
    if profile is None:
        raise not_visible(AssistantProfile, profile_id, "No such assistant profile.")
    return profile


def knowledge_bases_for_profile_editor(*, user: Any) -> QuerySet[Any]:
    """The knowledge bases an editor may attach to a profile: only those they may read themselves."""
    from knowledge.selectors import knowledge_bases_for_user

    return knowledge_bases_for_user(user=user, permission="view")


def profile_hidden_knowledge_base_count(*, user: Any, profile: AssistantProfile) -> int:
    """How many of a profile's knowledge bases this editor may not read (kept on save, never listed)."""
    readable = knowledge_bases_for_profile_editor(user=user).values("pk")
    return profile.knowledge_bases.exclude(pk__in=readable).count()


@dataclass(frozen=True)
class ProfileGrantees:
    roles: list[Any]  # Group rows
    users: list[Any]  # User rows


def profile_grantees(*, profile: AssistantProfile) -> ProfileGrantees:
    """The roles and users given `use_assistantprofile` on this profile directly (for its access screen)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from guardian.shortcuts import get_groups_with_perms, get_users_with_perms

    groups: dict[Any, list[str]] = get_groups_with_perms(profile, attach_perms=True)  # type: ignore[assignment]
    users: dict[Any, list[str]] = get_users_with_perms(  # type: ignore[assignment]
        profile, attach_perms=True, with_group_users=False, with_superusers=False
    )
    role_ids = [group.pk for group, perms in groups.items() if "use_assistantprofile" in perms]
    user_ids = [user.pk for user, perms in users.items() if "use_assistantprofile" in perms]
    return ProfileGrantees(
        roles=list(Group.objects.filter(pk__in=role_ids).order_by("name")),
        users=list(get_user_model().objects.filter(pk__in=user_ids).order_by("username")),
    )


def profiles_using_knowledge_base(*, knowledge_base_id: int, viewer: Any) -> Any:
    """Active profiles that search this knowledge base, for its page: by name those the viewer may use (all of
    them for whoever manages profiles), the rest only counted."""
    from governance.selectors import labels_sent_to_cloud
    from knowledge.consumers import Consumers
    from knowledge.selectors import knowledge_base_label

    searches_it = Q(knowledge_bases=knowledge_base_id)
    # a profile on every readable base takes in only the bases whose passages may leave, judged by the
    # viewer's policy (the one their own questions meet); any other base it searches only when chosen
    if knowledge_base_label(knowledge_base_id=knowledge_base_id) in labels_sent_to_cloud(user=viewer):
        searches_it |= Q(all_readable_knowledge=True)
    using = AssistantProfile.objects.filter(searches_it, is_active=True).distinct()
    if viewer.has_perm("assistant.view_assistantprofile"):
        named = using
    else:
        named = profiles_for_user(user=viewer).filter(searches_it).distinct()
    names = list(named.order_by("name").values_list("name", flat=True).distinct())
    return Consumers("assistant profile", names, using.count() - len(names))


def conversations_for_user(*, user: Any) -> QuerySet[Conversation]:
    """Only the user's own conversations: nobody reads another user's conversation, not even admins."""
    if not may_use_assistant(user=user):
        return Conversation.objects.none()
    return Conversation.objects.filter(owner=user).select_related("profile").order_by("-updated_at", "-pk")


def conversation_get(*, user: Any, conversation_id: int) -> Conversation:
    """The user's conversation; 404 for everybody else (the conversation's existence is not revealed)."""
    require_assistant_use(user=user)
    conversation = conversations_for_user(user=user).filter(pk=conversation_id).first()
    if conversation is None:
        raise not_visible(Conversation, conversation_id, "No such conversation.")
    return conversation


def conversation_attachments(*, user: Any, conversation: Conversation) -> list[Any]:
    """The documents attached to the user's conversation (its unlisted knowledge base), oldest first."""
    from knowledge.selectors import documents_for_user

    if conversation.attachments_base_id is None or conversation.owner_id != user.pk:
        return []
    documents = documents_for_user(user=user, include_unlisted=True)
    return list(documents.filter(knowledge_base_id=conversation.attachments_base_id).order_by("created_at", "pk"))


# ---- searching one's own conversations ------------------------------------------------------------------
SEARCH_CONFIG = "english"  # as the knowledge and memory searches
SEARCH_RESULTS = 20
SEARCH_WORDS = 16
_SEARCH_WORD = re.compile(r"[^\W_]+")
# Private-use characters around each matched word in ts_headline's output: the snippet is escaped first and
# only then are these turned into <mark>, so nothing of the stored text is ever taken as markup.
_MARK_START, _MARK_STOP = "\ue000", "\ue001"


@dataclass(frozen=True)
class ConversationHit:
    conversation_id: int
    title: str
    message_id: int | None  # the best matching message, None when only the title matches
    snippet: SafeString  # escaped text with <mark> around the matched words


def _search_query(text: str) -> SearchQuery | None:
    """Every word must match, the last ones as prefixes too (results come while the user is typing)."""
    words = [word.lower() for word in _SEARCH_WORD.findall(text)][:SEARCH_WORDS]
    if not words:
        return None
    return SearchQuery(" & ".join(f"{word}:*" for word in words), search_type="raw", config=SEARCH_CONFIG)


def _marked(headline: str) -> SafeString:
    escaped = str(escape(headline.replace("\n", " ")))
    html = escaped.replace(_MARK_START, "<mark>").replace(_MARK_STOP, "</mark>")
    # a stored text holding the marker characters itself could unbalance the tags: nh3 closes them
    return mark_safe(nh3.clean(html, tags={"mark"}, attributes={}))  # noqa: S308 - escaped, then only <mark>


def conversation_search(*, user: Any, text: str, limit: int = SEARCH_RESULTS) -> list[ConversationHit]:
    """The user's own conversations whose title or messages match the words, best first.

    Scoped by `conversations_for_user` in the query itself: another user's conversation is never a
    candidate, whatever the searcher's role.
    """
    query = _search_query(text)
    if query is None:
        return []
    own = conversations_for_user(user=user)
    message_vector = SearchVector("content", config=SEARCH_CONFIG)
    best_messages = (
        Message.objects.filter(conversation__in=own.values("pk"))
        .exclude(content="")
        .annotate(search=message_vector)
        .filter(search=query)
        .annotate(rank=SearchRank(message_vector, query))
        .order_by("conversation_id", "-rank", "pk")
        .distinct("conversation_id")
        .values_list("conversation_id", "pk", "rank")
    )
    title_vector = SearchVector("title", config=SEARCH_CONFIG)
    titles = (
        own.annotate(search=title_vector)
        .filter(search=query)
        .annotate(rank=SearchRank(title_vector, query))
        .values_list("pk", "rank")
    )
    score: dict[int, float] = {}
    message_of: dict[int, int] = {}
    for conversation_id, message_id, rank in best_messages:
        score[conversation_id] = float(rank)
        message_of[conversation_id] = message_id
    for conversation_id, rank in titles:  # a matching title counts more than one matching message
        score[conversation_id] = score.get(conversation_id, 0.0) + 2 * float(rank)
    chosen = sorted(score, key=lambda pk: (-score[pk], -pk))[:limit]
    title_of = dict(own.filter(pk__in=chosen).values_list("pk", "title"))
    headlines = dict(
        Message.objects.filter(pk__in=[message_of[pk] for pk in chosen if pk in message_of])
        .annotate(
            headline=SearchHeadline(
                "content", query, config=SEARCH_CONFIG, start_sel=_MARK_START, stop_sel=_MARK_STOP,
                max_words=24, min_words=8,
            )
        )
        .values_list("pk", "headline")
    )  # fmt: skip
    return [
        ConversationHit(
            conversation_id=pk,
            title=title_of[pk],
            message_id=message_of.get(pk),
            snippet=_marked(headlines.get(message_of.get(pk, 0), "")),
        )
        for pk in chosen
        if pk in title_of
    ]


def conversation_messages(*, conversation: Conversation) -> QuerySet[Message]:
    """The conversation in order; each answer knows its attempt ("2 of 3") and whether it may be regenerated."""
    return conversation.messages.order_by("created_at", "pk").annotate(
        attempt=Window(RowNumber(), partition_by=[F("reply_to")], order_by=F("pk").asc()),
        attempts=Window(Count("pk"), partition_by=[F("reply_to")]),
        latest_question_id=Subquery(_latest_question(OuterRef("conversation"))),
    )


def _latest_question(conversation: Any) -> Any:  # a one-row values() queryset, usable as a subquery
    return Message.objects.filter(conversation=conversation, role=MessageRole.USER).order_by("-pk").values("pk")[:1]


@dataclass(frozen=True)
class AnswerPlace:
    attempt: int
    attempts: int
    regenerable: bool  # an answer to the conversation's latest question: a new attempt may be asked for


def answer_place(*, message: Message) -> AnswerPlace:
    """Where one answer stands (for an answer rendered on its own, without `conversation_messages`' columns)."""
    attempt = getattr(message, "attempt", None)
    if attempt is not None:
        regenerable = message.is_answer and message.reply_to_id is not None
        latest_id = getattr(message, "latest_question_id", None)
        return AnswerPlace(attempt, getattr(message, "attempts", 1), regenerable and message.reply_to_id == latest_id)
    if not message.is_answer or message.reply_to_id is None:
        return AnswerPlace(1, 1, False)
    # the attempts at this question and the conversation's latest question, in one statement (each answer
    # streamed is rendered on its own, so this runs once per answer)
    with connection.cursor() as cursor:
        cursor.execute(_ANSWER_PLACE_SQL, [message.reply_to_id, message.conversation_id, MessageRole.USER.value])
        siblings, latest_id = cursor.fetchone()
    siblings = list(siblings or [])
    position = siblings.index(message.pk) + 1 if message.pk in siblings else len(siblings)
    return AnswerPlace(position, len(siblings), latest_id is not None and latest_id == message.reply_to_id)


_ANSWER_PLACE_SQL = f"""
SELECT ARRAY(SELECT id FROM {Message._meta.db_table} WHERE reply_to_id = %s ORDER BY id),
       (SELECT id FROM {Message._meta.db_table} WHERE conversation_id = %s AND role = %s ORDER BY id DESC LIMIT 1)
"""  # noqa: S608 - the table name is the model's own


# ---- exporting one's own conversation -------------------------------------------------------------------
@dataclass(frozen=True)
class ExportCitation:
    number: int
    title: str
    pages: str  # "page 7", "pages 7–8" or "" when the passage has no page
    knowledge_base: str


@dataclass(frozen=True)
class ExportMessage:
    message_id: int
    is_answer: bool
    created_at: datetime
    content: str
    status_label: str  # "" for a complete message; otherwise what the chat shows (blocked, cancelled, ...)
    error: str  # what the user was told when no (complete) answer could be given
    citations: list[ExportCitation]


@dataclass(frozen=True)
class ConversationExport:
    conversation_id: int
    title: str
    profile_name: str
    created_at: datetime
    messages: list[ExportMessage]


def _citation_pages(citation: dict[str, Any]) -> str:
    if citation.get("pages"):
        return str(citation["pages"])
    return f"page {citation['page_number']}" if citation.get("page_number") else ""


def _export_citations(stored: Any) -> list[ExportCitation]:
    """The sources the answer cites, as the chat lists them: title and page, never chunk or document ids."""
    if not isinstance(stored, list):
        return []
    return [
        ExportCitation(
            number=int(citation.get("number", 0)),
            title=str(citation.get("document_title", "")),
            pages=_citation_pages(citation),
            knowledge_base=str(citation.get("knowledge_base_name", "")),
        )
        for citation in stored
        if isinstance(citation, dict) and citation.get("cited")
    ]


def conversation_export_data(*, conversation: Conversation) -> ConversationExport:
    """What an export of an (already authorized) conversation holds: what the user saw, no routing internals."""
    messages = [
        ExportMessage(
            message_id=message.pk,
            is_answer=message.is_answer,
            created_at=message.created_at,
            content=message.content,
            status_label="" if message.status == MessageStatus.COMPLETE else message.get_status_display(),
            error=message.error,
            citations=_export_citations(message.citations) if message.is_answer else [],
        )
        for message in conversation_messages(conversation=conversation)
    ]
    return ConversationExport(
        conversation_id=conversation.pk,
        title=conversation.title,
        profile_name=conversation.profile.name,
        created_at=conversation.created_at,
        messages=messages,
    )


def history_for(*, conversation: Conversation, limit: int, before: Message | None = None) -> list[Message]:
    """The last complete, non-empty questions and answers (before a given question), oldest first; of a
    regenerated answer only the latest complete attempt."""
    recent = (
        conversation.messages.filter(status=MessageStatus.COMPLETE)
        .exclude(content="")
        .exclude(
            Exists(
                Message.objects.filter(
                    reply_to=OuterRef("reply_to"), pk__gt=OuterRef("pk"), status=MessageStatus.COMPLETE
                ).exclude(content="")
            )
        )
    )
    if before is not None:
        recent = recent.filter(pk__lt=before.pk)
    return list(reversed(recent.order_by("-pk")[:limit]))


def regenerable_question_get(*, conversation: Conversation, question_id: int) -> Message:
    """The conversation's latest question, already sent or answered, for a new attempt at its answer."""
    question = conversation.messages.filter(
        pk=question_id, role=MessageRole.USER, status=MessageStatus.COMPLETE, pk__in=_latest_question(conversation)
    ).first()
    if question is None:
        raise not_visible(Message, question_id, ERROR_NOT_REGENERABLE)
    return question


def edited_question_get(*, conversation: Conversation, question_id: int) -> Message:
    """A question of this conversation that the user edits and sends again."""
    question = conversation.messages.filter(pk=question_id, role=MessageRole.USER).first()
    if question is None:
        raise not_visible(Message, question_id, "No such question.")
    return question


def message_get(*, user: Any, message_id: int) -> Message:
    require_assistant_use(user=user)
    message = Message.objects.filter(pk=message_id, conversation__owner=user).select_related("conversation").first()
    if message is None:
        raise not_visible(Message, message_id, "No such message.")
    return message


def answer_get(*, user: Any, message_id: int) -> Message:
    """An answer in one of the user's own conversations (to remember it, say); 404 for any other message."""
    message = (
        Message.objects.select_related("conversation")
        .filter(pk=message_id, role=MessageRole.ASSISTANT, conversation__owner_id=user.pk)
        .first()
    )
    if message is None:
        raise not_visible(Message, message_id, ERROR_NO_SUCH_ANSWER)
    return message


def cited_source(*, message: Message, number: int) -> dict[str, Any]:
    """Source `number` as the answer stored it (its url, chunk and document ids); Http404 when the answer did
    not cite such a source or it has no address."""
    from django.http import Http404

    for citation in message.citations or []:
        if (
            isinstance(citation, dict)
            and citation.get("number") == number
            and citation.get("cited")
            and citation.get("url")
        ):
            return citation
    raise Http404("The answer cites no such source.")


def pending_question_get(*, conversation: Conversation, question_id: int) -> Message:
    """A question of this (already authorized) conversation that waits for the user's confirmation."""
    question = conversation.messages.filter(
        pk=question_id, role=MessageRole.USER, status=MessageStatus.AWAITING_CONFIRMATION
    ).first()
    if question is None:
        raise not_visible(Message, question_id, ERROR_NOT_PENDING)
    return question


def profile_grants(*, profile: AssistantProfile) -> dict[str, list[str]]:
    """Who may use a profile (for the people who manage profiles): role names and usernames."""
    from guardian.shortcuts import get_groups_with_perms, get_users_with_perms

    groups: dict[Any, list[str]] = get_groups_with_perms(profile, attach_perms=True)  # type: ignore[assignment]
    users: dict[Any, list[str]] = get_users_with_perms(  # type: ignore[assignment]
        profile, attach_perms=True, with_group_users=False, with_superusers=False
    )
    return {
        "roles": sorted(group.name for group, perms in groups.items() if "use_assistantprofile" in perms),
        "users": sorted(user.get_username() for user, perms in users.items() if "use_assistantprofile" in perms),
    }


# ---- reads for memory learning (portal/memory): system reads by its Celery task ------------------------
def conversation_for_learning(*, conversation_id: int) -> Conversation | None:
    return Conversation.objects.select_related("owner").filter(pk=conversation_id).first()


def conversations_idle_with_answers(*, idle_since: datetime, oldest: datetime) -> QuerySet[Conversation]:
    """Conversations of active users last changed between `oldest` and `idle_since` that have a complete
    answer, each annotated with `last_message_id`, its latest complete, non-empty message."""
    last_complete = (
        Message.objects.filter(conversation=OuterRef("pk"), status=MessageStatus.COMPLETE)
        .exclude(content="")
        .order_by("-pk")
        .values("pk")[:1]
    )
    answered = Message.objects.filter(
        conversation=OuterRef("pk"), role=MessageRole.ASSISTANT, status=MessageStatus.COMPLETE
    )
    return (
        Conversation.objects.filter(updated_at__lte=idle_since, updated_at__gte=oldest, owner__is_active=True)
        .filter(Exists(answered))
        .annotate(last_message_id=Subquery(last_complete))
    )


# ---- reads for the local task router (portal/ml): system reads by training and review screens --------
@dataclass(frozen=True)
class QuestionForTraining:
    message_id: int
    text: str
    created_at: Any
    profile_task_type: str  # "" when the profile routes automatically
    route_task_type: str  # what the route decision chose
    route_tier: str
    route_reason: str
    answer_feedback: int | None  # the rating of its answer (1 / -1), if any


def questions_for_training(
    *, limit: int = 5000, automatic_only: bool = False, message_ids: list[int] | None = None
) -> list[QuestionForTraining]:
    """Stored questions with their route and the feedback on their answer, newest first."""
    questions = Message.objects.filter(role=MessageRole.USER).exclude(content="")
    if automatic_only:
        questions = questions.filter(conversation__profile__task_type="")
    if message_ids is not None:
        questions = questions.filter(pk__in=message_ids)
    answers = Message.objects.filter(reply_to=OuterRef("pk"), role=MessageRole.ASSISTANT).order_by("-pk")
    rows = (
        questions.annotate(
            answer_route=Subquery(answers.values("route")[:1]),
            answer_feedback=Subquery(answers.values("feedback")[:1]),
        )
        .order_by("-created_at", "-pk")
        .values_list("pk", "content", "created_at", "conversation__profile__task_type", "route", "answer_route",
                     "answer_feedback")[:limit]
    )  # fmt: skip
    result = []
    for pk, text, created_at, profile_task_type, route, answer_route, feedback in rows:
        decided = route or answer_route or {}
        result.append(
            QuestionForTraining(
                message_id=pk, text=text, created_at=created_at, profile_task_type=profile_task_type or "",
                route_task_type=str(decided.get("task_type", "")), route_tier=str(decided.get("tier", "")),
                route_reason=str(decided.get("reason", "")), answer_feedback=feedback,
            )
        )  # fmt: skip
    return result


def profile_names() -> set[str]:
    """Names of the active profiles, for checking definitions that name one (workflows)."""
    return set(AssistantProfile.objects.filter(is_active=True).values_list("name", flat=True))


RANKER_SIGNAL_QUESTIONS = 5000  # the latest helpful answers a ranker learns from


def ranker_signals(knowledge_base_id: int) -> list[Any]:
    """The retrieval ranker's real signals for one base (knowledge.ranking.LabelledQuestion): each question
    whose answer was marked helpful or kept with "remember this", with the chunks of this base the answer
    cited, and each question one of whose cited sources was opened from the answer, with the opened chunks.
    An answer rated not helpful gives nothing. Read by the worker that trains the ranker, never shown; the
    ranker keeps coefficients, not these texts."""
    from knowledge.ranking import LabelledQuestion
    from knowledge.selectors import chunks_in_knowledge_base
    from portal.memory.selectors import answers_remembered

    remembered = set(answers_remembered(limit=RANKER_SIGNAL_QUESTIONS))
    served = Q(feedback=1) | Q(pk__in=remembered)
    opened: dict[int, set[int]] = {}
    for message_id, chunk_id in CitationOpen.objects.order_by("-pk").values_list("message_id", "chunk_id")[
        :RANKER_SIGNAL_QUESTIONS
    ]:
        opened.setdefault(int(message_id), set()).add(int(chunk_id))
    rows = list(
        Message.objects.filter(
            served | Q(pk__in=list(opened)),
            role=MessageRole.ASSISTANT,
            status=MessageStatus.COMPLETE,
            reply_to__isnull=False,
        )
        .exclude(feedback=-1)
        .order_by("-pk")
        .values_list("pk", "reply_to__content", "citations", "feedback")[:RANKER_SIGNAL_QUESTIONS]
    )
    positives: list[set[int]] = []
    for pk, _, citations, feedback in rows:
        chunks = set(opened.get(pk, set()))
        if feedback == 1 or pk in remembered:
            chunks |= {
                int(c["chunk_id"])
                for c in citations or []
                if isinstance(c, dict) and c.get("cited") and "chunk_id" in c
            }
        positives.append(chunks)
    in_base = chunks_in_knowledge_base(
        knowledge_base_id=knowledge_base_id, chunk_ids={c for chunks in positives for c in chunks}
    )
    return [
        LabelledQuestion(question, frozenset(chunks & in_base))
        for (_, question, _, _), chunks in zip(rows, positives, strict=True)
        if question and chunks & in_base
    ]
