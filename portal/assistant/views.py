"""Chat pages. Asking is an async view: the answer streams without holding a server thread per reader.

With JavaScript (static/js/assistant.js) the ask form is posted by fetch with `Accept: application/x-ndjson`
and the response is a stream of JSON lines (question, delta..., done). Without JavaScript the same form
posts normally and gets the conversation page back once the answer is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Literal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from portal.assistant import export, pipeline, selectors, services
from portal.assistant.db import db_phase
from portal.assistant.forms import (
    AskForm,
    AttachForm,
    ExportForm,
    FeedbackForm,
    NewConversationForm,
    ProfileAccessForm,
    ProfileForm,
    RenameForm,
    SearchForm,
)
from portal.assistant.models import AssistantProfile, Conversation, Message
from portal.assistant.presentation import message_html
from portal.assistant.rendering import render_markdown_partial
from portal.core.types import PortalRequest

STREAM_CONTENT_TYPE = "application/x-ndjson"
# The streaming answer is rendered (markdown + nh3) again after at least this many new characters, or at
# a line end, not at every piece: a few renders per answer keep the CPU cost per reader low.
RENDER_EVERY_CHARS = 160


def _chat_context(request: PortalRequest, conversation: Conversation | None, **extra: Any) -> dict[str, Any]:
    user = request.user
    context: dict[str, Any] = {
        "conversations": selectors.conversations_for_user(user=user),
        "current": conversation,
        "new_form": NewConversationForm(user=user),
        "ask_form": AskForm(),
        "search_form": SearchForm(),
        "rename_form": RenameForm(initial={"title": conversation.title}) if conversation else None,
        "chat_messages": list(selectors.conversation_messages(conversation=conversation)) if conversation else [],
        "attach_form": AttachForm(),
    }
    if conversation is not None:
        context.update(_attachments_context(request, conversation))
    context.update(extra)
    return context


def _attachments_context(request: PortalRequest, conversation: Conversation) -> dict[str, Any]:
    attachments = selectors.conversation_attachments(user=request.user, conversation=conversation)
    return {
        "current": conversation,
        "attachments": attachments,
        "attachments_pending": any(not document.is_final for document in attachments),
    }


def _render_chat(request: PortalRequest, conversation: Conversation | None, status: int, **extra: Any) -> HttpResponse:
    return render(request, "assistant/chat.html", _chat_context(request, conversation, **extra), status=status)


@login_required
@require_GET
def chat_view(request: PortalRequest) -> HttpResponse:
    selectors.require_assistant_use(user=request.user)
    latest = selectors.conversations_for_user(user=request.user).first()
    if latest is not None and "all" not in request.GET:
        return redirect("assistant:conversation", conversation_id=latest.pk)
    return render(request, "assistant/chat.html", _chat_context(request, None))


@login_required
@require_GET
def conversation_view(request: PortalRequest, conversation_id: int) -> HttpResponse:
    conversation = selectors.conversation_get(user=request.user, conversation_id=conversation_id)
    template = "assistant/chat.html#conversation-pane" if request.htmx else "assistant/chat.html"
    return render(request, template, _chat_context(request, conversation))


@login_required
@require_GET
def conversation_search_view(request: PortalRequest) -> HttpResponse:
    """Search results in the sidebar: the fragment for the live search (htmx), the chat page without it."""
    selectors.require_assistant_use(user=request.user)
    form = SearchForm(request.GET)
    if not form.is_valid():
        return render(request, "assistant/chat.html", _chat_context(request, None, search_form=form), status=400)
    text = form.cleaned_data["q"]
    extra = {
        "search_form": form,
        "searched": True,
        "search_text": text,
        "search_hits": selectors.conversation_search(user=request.user, text=text) if text else [],
    }
    if request.htmx:
        return render(request, "assistant/chat.html#search-results", extra)
    return render(request, "assistant/chat.html", _chat_context(request, None, **extra))


@login_required
@require_POST
def conversation_new_view(request: PortalRequest) -> HttpResponse:
    selectors.require_assistant_use(user=request.user)
    form = NewConversationForm(request.POST, user=request.user)
    if not form.is_valid():
        return render(request, "assistant/chat.html", _chat_context(request, None, new_form=form), status=400)
    conversation = services.conversation_create(
        actor=request.user, profile=form.cleaned_data["profile"], customer_id=form.cleaned_data.get("customer")
    )
    url = reverse("assistant:conversation", kwargs={"conversation_id": conversation.pk})
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@login_required
@require_POST
def conversation_rename_view(request: PortalRequest, conversation_id: int) -> HttpResponse:
    conversation = selectors.conversation_get(user=request.user, conversation_id=conversation_id)
    form = RenameForm(request.POST)
    if form.is_valid():
        try:
            services.conversation_rename(
                actor=request.user, conversation=conversation, title=form.cleaned_data["title"]
            )
        except ValidationError as error:
            form.add_error("title", error)
    if not form.is_valid():
        context = _chat_context(request, conversation, rename_form=form)
        template = "assistant/chat.html#conversation-head" if request.htmx else "assistant/chat.html"
        return render(request, template, context, status=400)
    if request.htmx:  # the new title also replaces the sidebar's link (an out-of-band swap)
        context = _chat_context(request, conversation, renamed=True)
        return render(request, "assistant/chat.html#conversation-head", context)
    return redirect("assistant:conversation", conversation_id=conversation.pk)


@login_required
@require_POST
def conversation_delete_view(request: PortalRequest, conversation_id: int) -> HttpResponse:
    conversation = selectors.conversation_get(user=request.user, conversation_id=conversation_id)
    try:
        services.conversation_delete(actor=request.user, conversation=conversation)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        url = reverse("assistant:conversation", args=[conversation_id])
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    messages.success(request, "Conversation deleted.")
    url = reverse("assistant:chat") + "?all"
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@login_required
@require_GET
def conversation_export_view(request: PortalRequest, conversation_id: int) -> HttpResponse:
    """The owner's conversation as a Markdown or HTML file; each download is audited (a data access)."""
    conversation = selectors.conversation_get(user=request.user, conversation_id=conversation_id)
    form = ExportForm(request.GET)
    if not form.is_valid():
        errors = " ".join(str(text) for texts in form.errors.values() for text in texts)
        return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
    fmt = form.cleaned_data["format"]
    data = selectors.conversation_export_data(conversation=conversation)
    body = export.as_html(data) if fmt == export.FORMAT_HTML else export.as_markdown(data)
    services.conversation_export(actor=request.user, conversation=conversation, fmt=fmt)
    response = HttpResponse(body, content_type=export.CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{export.filename(data, fmt)}"'
    response["Cache-Control"] = "no-store"
    return response


# ---- attached files ---------------------------------------------------------------------------------------
@login_required
@require_POST
def attach_view(request: PortalRequest, conversation_id: int) -> HttpResponse:
    """Attach files to the conversation; each file alone (one refused file never undoes the others)."""
    conversation = selectors.conversation_get(user=request.user, conversation_id=conversation_id)
    form = AttachForm(request.POST, request.FILES)
    if not form.is_valid():
        if request.htmx:
            context = {**_attachments_context(request, conversation), "attach_form": form}
            return render(request, "assistant/chat.html#attachments", context, status=400)
        return _render_chat(request, conversation, status=400, attach_form=form)
    results = [
        services.conversation_attach(actor=request.user, conversation=conversation, uploaded_file=uploaded)
        for uploaded in form.cleaned_data["uploads"]
    ]
    conversation.refresh_from_db()  # the first file made its knowledge base
    if request.htmx:
        context = {**_attachments_context(request, conversation), "attach_form": AttachForm()}
        context["attach_results"] = results
        return render(request, "assistant/chat.html#attachments", context)
    for result in results:
        if result.document is None:
            messages.error(request, f"{result.filename}: not attached. {result.error}")
        else:
            messages.info(request, f"{result.filename}: attached; it is searchable here once it is processed.")
    return redirect("assistant:conversation", conversation_id=conversation.pk)


@login_required
@require_GET
def attachments_view(request: PortalRequest, conversation_id: int) -> HttpResponse:
    """The attached files with their status: polled while one is still processing; the page without htmx."""
    conversation = selectors.conversation_get(user=request.user, conversation_id=conversation_id)
    if request.htmx:
        return render(request, "assistant/chat.html#attachment-list", _attachments_context(request, conversation))
    return redirect("assistant:conversation", conversation_id=conversation.pk)


# ---- asking (async) ---------------------------------------------------------------------------------------
def _message_html(request: HttpRequest, message: Message) -> str:
    return message_html(request, message)


def _question_html_and_title(request: HttpRequest, message: Message) -> tuple[str, str]:
    return _message_html(request, message), message.conversation.title


async def _batches(
    events: AsyncIterator[pipeline.AnswerEvent], *, interval: float
) -> AsyncGenerator[list[pipeline.AnswerEvent], None]:
    """The pipeline's events in order, in batches: answer pieces that come within `interval` seconds of the
    last batch sent wait and go out with it, so a reader gets a few lines a second, not one per model chunk
    (each line costs a JSON encoding, a pass through Django's response and a socket write). A piece after a
    quiet spell goes at once; no piece waits longer than `interval`, whatever the model does meanwhile; any
    other event goes at once with the pieces before it.

    The pipeline runs in a task of its own that only appends to the batch; leaving (a closed stream, a reader
    who went away) cancels that task and waits for it, so the pipeline stores what was shown as it does when
    it is cancelled directly.
    """
    loop = asyncio.get_running_loop()
    pending: list[pipeline.AnswerEvent] = []
    finished = False
    urgent = False  # an event other than a piece is waiting, or the pipeline has ended: send without waiting
    idle = False  # nothing is pending and the sender waits for the next event, whatever it is
    waiter: asyncio.Future[None] | None = None

    def wake() -> None:
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(timeout: float | None) -> None:
        # a future and a timer, not asyncio.wait_for: no task and no cancellation for each line sent
        nonlocal waiter
        waiter = loop.create_future()
        timer = loop.call_later(timeout, wake) if timeout is not None else None
        try:
            await waiter
        finally:
            waiter = None
            if timer is not None:
                timer.cancel()

    async def pull() -> None:
        nonlocal finished, urgent
        try:
            async for event in events:
                pending.append(event)
                if not isinstance(event, pipeline.AnswerDelta):
                    urgent = True
                    wake()
                elif idle:
                    wake()
        finally:
            finished = urgent = True
            wake()

    puller = asyncio.ensure_future(pull())
    next_send = 0.0
    try:
        while pending or not finished:
            if not pending:
                idle = True
                try:
                    await wait(None)
                finally:
                    idle = False
                continue
            delay = next_send - loop.time()
            if delay > 0 and not urgent:
                await wait(delay)
            urgent = finished
            batch = pending[:]
            pending.clear()
            yield batch
            if any(isinstance(event, pipeline.AnswerDelta) for event in batch):
                next_send = loop.time() + interval  # the question's line does not hold back the first piece
        await puller  # the pipeline's own error, if it raised one
    finally:
        if not puller.done():
            puller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await puller


def _joined(batch: list[pipeline.AnswerEvent]) -> list[pipeline.AnswerEvent]:
    """The batch with each run of answer pieces as one piece; a reset stays a line of its own, as it was."""
    joined: list[pipeline.AnswerEvent] = []
    for event in batch:
        previous = joined[-1] if joined else None
        if (
            isinstance(event, pipeline.AnswerDelta)
            and not event.reset
            and isinstance(previous, pipeline.AnswerDelta)
            and not previous.reset
        ):
            joined[-1] = pipeline.AnswerDelta(previous.text + event.text)
        else:
            joined.append(event)
    return joined


async def _stream_lines(
    request: HttpRequest, events: AsyncIterator[pipeline.AnswerEvent], *, received: float
) -> AsyncIterator[bytes]:
    """The stream's JSON lines; `received` is when the view began (perf_counter): the `done` event's timings
    carry `first_delta_ms`, the server's own time to the first answer piece (bench_chat compares it with
    what the browser sees). Pieces that come close together go out as one `delta` line (`_batches`)."""

    def line(payload: dict[str, Any]) -> bytes:
        return (json.dumps(payload) + "\n").encode()

    first_delta_ms: float | None = None
    shown = ""
    rendered_length = 0
    interval = settings.ASSISTANT_STREAM_FLUSH_MS / 1000
    async with contextlib.aclosing(_batches(events, interval=interval)) as batches:
        async for batch in batches:
            lines: list[bytes] = []
            for event in _joined(batch):
                if isinstance(event, pipeline.AnswerDelta):
                    if event.reset:
                        shown, rendered_length = "", 0
                    shown += event.text
                    payload: dict[str, Any] = {"event": "delta", "text": event.text, "reset": event.reset}
                    if shown and (len(shown) - rendered_length >= RENDER_EVERY_CHARS or "\n" in event.text):
                        # the whole answer so far, sanitized by the server; the page shows only this as HTML
                        payload["html"] = str(render_markdown_partial(shown))
                        rendered_length = len(shown)
                    lines.append(line(payload))
                    if first_delta_ms is None:
                        first_delta_ms = (time.perf_counter() - received) * 1000
                elif isinstance(event, pipeline.QuestionStored):
                    html, title = await sync_to_async(_question_html_and_title)(request, event.message)
                    lines.append(line({"event": "question", "id": event.message.pk, "html": html, "title": title}))
                elif isinstance(event, pipeline.PreviewReady):
                    html = await sync_to_async(_message_html)(request, event.question)
                    lines.append(line({"event": "preview", "id": event.question.pk, "html": html}))
                elif isinstance(event, pipeline.AnswerStored):
                    html = await sync_to_async(_message_html)(request, event.message)
                    timings = {name: round(value, 2) for name, value in event.timings.items()}
                    if first_delta_ms is not None:
                        timings["first_delta_ms"] = round(first_delta_ms, 2)
                    lines.append(line({"event": "done", "id": event.message.pk, "html": html, "timings": timings}))
            yield b"".join(lines)


async def _respond(
    request: PortalRequest, conversation: Conversation, events: AsyncIterator[pipeline.AnswerEvent], *, received: float
) -> HttpResponse | StreamingHttpResponse:
    if STREAM_CONTENT_TYPE in request.headers.get("Accept", ""):
        lines = _stream_lines(request, events, received=received)
        response = StreamingHttpResponse(lines, content_type=STREAM_CONTENT_TYPE)
        response["Cache-Control"] = "no-store"
        response["X-Accel-Buffering"] = "no"  # nginx: pass the pieces through as they come
        return response
    last: Any = None
    async for event in events:  # without JavaScript: wait for the stored answer, then show the page
        last = event
    url = reverse("assistant:conversation", kwargs={"conversation_id": conversation.pk})
    anchor = f"#message-{last.message.pk}" if isinstance(last, pipeline.AnswerStored) else ""
    return redirect(url + anchor)


def _load_for_asking(
    *,
    request: PortalRequest,
    conversation_id: int,
    question_id: int | None = None,
    question_get: Callable[..., Message] = selectors.pending_question_get,
) -> tuple[Any, Conversation, pipeline.Authorization] | None:
    """Signed-in user and their conversation, if they may ask in it (404 / 403 otherwise); None: sign in.

    With `question_id`, that question must be one `question_get` returns (waiting for confirmation, or the
    latest one for a regeneration): every refusal is a 404 or 403 before the first byte of a stream, never
    an exception halfway through one.
    """
    user = request.user
    if not user.is_authenticated:
        return None
    conversation = selectors.conversation_get(user=user, conversation_id=conversation_id)
    authorization = pipeline.authorize(user=user, conversation=conversation)  # 403 before any byte of a stream
    if question_id is not None:
        question_get(conversation=conversation, question_id=question_id)
    return user, conversation, authorization


# The ask views check the sign-in themselves (instead of @login_required) so that reading the user happens
# inside a bounded database phase (see portal.assistant.db): 200 readers must not mean 200 connections.
@require_POST
async def ask_view(request: PortalRequest, conversation_id: int) -> HttpResponse | StreamingHttpResponse:
    received = time.perf_counter()
    loaded = await db_phase(_load_for_asking, request=request, conversation_id=conversation_id)
    if loaded is None:
        return redirect_to_login(request.get_full_path())
    user, conversation, authorization = loaded
    form = AskForm(request.POST)
    if not form.is_valid():
        return await sync_to_async(_render_chat)(request, conversation, status=400, ask_form=form)
    edited_from = None
    if form.cleaned_data.get("edited_from"):  # edit and resend: 404 unless it is a question of this conversation
        edited_from = await db_phase(
            selectors.edited_question_get, conversation=conversation, question_id=form.cleaned_data["edited_from"]
        )
    events = pipeline.answer(
        user=user,
        conversation=conversation,
        question=form.cleaned_data["question"],
        edited_from=edited_from,
        authorization=authorization,
    )
    return await _respond(request, conversation, events, received=received)


async def _answer_again(
    request: PortalRequest,
    *,
    conversation_id: int,
    question_id: int,
    question_get: Callable[..., Message],
    again: Literal["regenerate", "confirm"],
) -> HttpResponse | StreamingHttpResponse:
    """Answer a question already stored: a new attempt (`regenerate`) or the confirmed send of a previewed
    one (`confirm`); `question_get` refuses any other question with a 404 before the stream starts."""
    received = time.perf_counter()
    loaded = await db_phase(_load_for_asking, request=request, conversation_id=conversation_id,
                            question_id=question_id, question_get=question_get)  # fmt: skip
    if loaded is None:
        return redirect_to_login(request.get_full_path())
    user, conversation, authorization = loaded
    events = pipeline.answer(
        user=user,
        conversation=conversation,
        authorization=authorization,
        regenerate_question_id=question_id if again == "regenerate" else None,
        confirm_question_id=question_id if again == "confirm" else None,
    )
    return await _respond(request, conversation, events, received=received)


@require_POST
async def regenerate_view(
    request: PortalRequest, conversation_id: int, question_id: int
) -> HttpResponse | StreamingHttpResponse:
    """A new attempt at the answer to the latest question; the earlier attempts stay in the conversation."""
    return await _answer_again(request, conversation_id=conversation_id, question_id=question_id,
                               question_get=selectors.regenerable_question_get, again="regenerate")  # fmt: skip


@require_POST
async def confirm_view(
    request: PortalRequest, conversation_id: int, question_id: int
) -> HttpResponse | StreamingHttpResponse:
    """The user saw exactly what would leave and confirms it: now it is sent (if it is still the same)."""
    return await _answer_again(request, conversation_id=conversation_id, question_id=question_id,
                               question_get=selectors.pending_question_get, again="confirm")  # fmt: skip


@login_required
@require_POST
def cancel_view(request: PortalRequest, conversation_id: int, question_id: int) -> HttpResponse:
    conversation = selectors.conversation_get(user=request.user, conversation_id=conversation_id)
    question = selectors.message_get(user=request.user, message_id=question_id)
    if question.conversation_id != conversation.pk:
        return HttpResponse(status=404)
    try:
        services.question_cancel(actor=request.user, question=question)
    except ValidationError as error:
        return HttpResponse(str(error.messages[0]), status=400)
    if request.htmx:
        return HttpResponse(message_html(request, question))
    return redirect("assistant:conversation", conversation_id=conversation.pk)


@login_required
@require_POST
def feedback_view(request: PortalRequest, message_id: int) -> HttpResponse:
    message = selectors.message_get(user=request.user, message_id=message_id)
    if not message.is_answer:
        return HttpResponse(status=404)
    form = FeedbackForm(request.POST)
    if not form.is_valid():
        return render(request, "assistant/_feedback.html", {"message": message, "form": form}, status=400)
    services.message_feedback(
        actor=request.user, message=message, rating=form.cleaned_data["rating"], comment=form.cleaned_data["comment"]
    )
    if request.htmx:
        return render(request, "assistant/_feedback.html", {"message": message, "saved": True})
    return redirect(
        reverse("assistant:conversation", kwargs={"conversation_id": message.conversation_id})
        + f"#message-{message.pk}"
    )


@login_required
@require_GET
def citation_open_view(request: PortalRequest, message_id: int, number: int) -> HttpResponse:
    """Open a source the answer cited, counting the open as a ranker signal. A request another site started
    (Sec-Fetch-Site: cross-site) is sent on without counting, so no other page can plant signals."""
    message = selectors.answer_get(user=request.user, message_id=message_id)
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        url = str(selectors.cited_source(message=message, number=number)["url"])
    else:
        url = services.citation_open(actor=request.user, message=message, number=number)
    if not url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return HttpResponse(status=404)
    return redirect(url)


# ---- profiles ---------------------------------------------------------------------------------------------
@login_required
@require_GET
def profile_list_view(request: PortalRequest) -> HttpResponse:
    manageable = request.user.has_perm("assistant.view_assistantprofile")
    if not manageable:  # who manages profiles reaches the list from the Manage menu, using the assistant or not
        selectors.require_assistant_use(user=request.user)
    profiles = (
        selectors.profiles_for_management(user=request.user)
        if manageable
        else selectors.profiles_for_user(user=request.user).prefetch_related("knowledge_bases")
    )
    usable = set(selectors.profiles_for_user(user=request.user).values_list("pk", flat=True))
    rows = [
        {
            "profile": profile,
            "usable": profile.pk in usable,
            "granted": selectors.profile_grants(profile=profile) if manageable else None,
        }
        for profile in profiles
    ]
    return render(
        request,
        "assistant/profile_list.html",
        {
            "rows": rows,
            "manageable": manageable,
            "new_form": NewConversationForm(user=request.user),
            "can_add": selectors.may_edit_profiles(user=request.user, action="add"),
            "can_change": selectors.may_edit_profiles(user=request.user, action="change"),
        },
    )


def _profile_form_page(
    request: PortalRequest, form: ProfileForm, profile: AssistantProfile | None, status: int = 200
) -> HttpResponse:
    hidden = selectors.profile_hidden_knowledge_base_count(user=request.user, profile=profile) if profile else 0
    context = {"form": form, "profile": profile, "hidden_knowledge_bases": hidden}
    return render(request, "assistant/profile_form.html", context, status=status)


def _profile_post(request: PortalRequest, form: ProfileForm, profile: AssistantProfile | None) -> HttpResponse:
    """Save a posted profile through the audited service, or show the form again with why not (400)."""
    if form.is_valid():
        try:
            saved = services.profile_save(actor=request.user, profile=profile, data=form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Profile \u201c{saved.name}\u201d saved.")
            return redirect("assistant:profile_list")
    return _profile_form_page(request, form, profile, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def profile_new_view(request: PortalRequest) -> HttpResponse:
    selectors.require_profile_editing(user=request.user, action="add")
    if request.method != "POST":
        return _profile_form_page(request, ProfileForm(editor=request.user), None)
    return _profile_post(request, ProfileForm(request.POST, editor=request.user), None)


@login_required
@require_http_methods(["GET", "POST"])
def profile_edit_view(request: PortalRequest, profile_id: int) -> HttpResponse:
    profile = selectors.profile_for_editing(user=request.user, profile_id=profile_id)
    if request.method != "POST":
        return _profile_form_page(request, ProfileForm(instance=profile, editor=request.user), profile)
    return _profile_post(request, ProfileForm(request.POST, instance=profile, editor=request.user), profile)


@login_required
@require_http_methods(["GET", "POST"])
def profile_access_view(request: PortalRequest, profile_id: int) -> HttpResponse:
    """Who may use a profile: the roles and users granted it, a revoke button each, and a form to grant."""
    profile = selectors.profile_for_editing(user=request.user, profile_id=profile_id)
    form = ProfileAccessForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            change = services.profile_grant if data["action"] == "grant" else services.profile_revoke
            try:
                changed = change(actor=request.user, profile=profile, group=data["group"], user=data["user"])
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(request, "Access updated." if changed else "Nothing to change: access was already so.")
                return redirect("assistant:profile_access", profile_id=profile.pk)
        status = 400
    else:
        status = 200
    context = {"profile": profile, "form": form, "grantees": selectors.profile_grantees(profile=profile)}
    return render(request, "assistant/profile_access.html", context, status=status)
