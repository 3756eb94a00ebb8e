from __future__ import annotations

from functools import partial
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.assistant.selectors import answer_get, conversation_get
from portal.core.types import PortalRequest
from portal.core.views import form_save_or_show
from portal.memory.forms import MemoryFilterForm, MemoryForm
from portal.memory.models import MemoryItem, Scope, Status
from portal.memory.selectors import (
    can_forget,
    can_review,
    is_reviewer,
    memories_visible_to,
    memory_get,
    memory_list,
    require_forget,
    require_memory_access,
    require_memory_adding,
    require_review,
)
from portal.memory.services import (
    memory_archive,
    memory_create,
    memory_delete,
    memory_learning_schedule,
    memory_remember_answer,
    memory_review,
    memory_update,
)

MEMORIES_PER_PAGE = 50
MEMORY_FORM = "memory/memory_form.html"


def _apply_form_errors(form: MemoryForm, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


def _flagged(memories: list[MemoryItem], user: Any) -> dict[int, MemoryItem]:
    """The memories that flags point at, as far as this user may see them; each memory gets `flag_rows`
    (the flag and the other memory, or None when it is hidden from this user or gone)."""
    ids = {flag["memory_id"] for memory in memories for flag in memory.flags}
    found = {m.pk: m for m in memories_visible_to(user=user).filter(pk__in=ids)} if ids else {}
    for memory in memories:
        memory.flag_rows = [{"flag": flag, "other": found.get(flag["memory_id"])} for flag in memory.flags]  # type: ignore[attr-defined]
    return found


@login_required
@require_GET
def memory_list_view(request: PortalRequest) -> HttpResponse:
    form = MemoryFilterForm(request.GET or None)
    filters: dict[str, Any] = {}
    if form.is_valid():
        data = form.cleaned_data
        filters = {
            "scope": data["scope"],
            "status": data["status"],
            "kind": data["kind"],
            "search": data["q"],
            "customer_id": data["customer"],
        }
    memories = memory_list(user=request.user, **filters)
    page = Paginator(memories, MEMORIES_PER_PAGE).get_page(request.GET.get("page"))
    context = {"form": form, "page": page, "reviewer": is_reviewer(request.user), "query": request.GET.urlencode()}
    template = "memory/memory_list.html#memory-table" if request.htmx else "memory/memory_list.html"
    return render(request, template, context)


@login_required
@require_GET
def memory_review_queue_view(request: PortalRequest) -> HttpResponse:
    proposals = [m for m in memory_list(user=request.user, status=Status.PROPOSED) if can_review(request.user, m)]
    context = {"proposals": proposals, "flagged": _flagged(proposals, request.user)}
    return render(request, "memory/review_queue.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def memory_create_view(request: PortalRequest) -> HttpResponse:
    require_memory_adding(user=request.user)
    initial: dict[str, Any] = {"scope": Scope.ORGANISATION if is_reviewer(request.user) else Scope.USER}
    customer = request.GET.get("customer", "")
    if customer.isdigit():
        initial.update(scope=Scope.CUSTOMER, scope_customer=int(customer))
    form = MemoryForm(request.POST or None, user=request.user, initial=initial)

    def save() -> HttpResponse:
        memory = memory_create(actor=request.user, draft=form.draft(), request=request)
        _announce(request, memory)
        return redirect(memory)

    refused = partial(_apply_form_errors, form)
    context = {"title": "Add a memory"}
    return form_save_or_show(request, form, save=save, refused=refused, template=MEMORY_FORM, context=context)


def _announce(request: PortalRequest, memory: MemoryItem) -> None:
    if memory.status == Status.APPROVED:
        messages.success(request, "Memory saved; the assistant can use it now.")
    elif memory.flags:
        messages.warning(request, "Memory proposed for review: it may repeat or contradict an existing memory.")
    else:
        messages.success(request, "Memory proposed; it is used once it has been approved.")


@login_required
@require_http_methods(["GET", "POST"])
def memory_remember_view(request: PortalRequest, message_id: int) -> HttpResponse:
    """ "Remember this" on an answer: a memory proposed from (an edited version of) the answer."""
    require_memory_adding(user=request.user)
    answer = answer_get(user=request.user, message_id=message_id)
    initial: dict[str, Any] = {"text": answer.content[: settings.MEMORY_MAX_CHARS], "scope": Scope.USER}
    if answer.conversation.customer_id:
        initial.update(scope=Scope.CUSTOMER, scope_customer=answer.conversation.customer_id)
    form = MemoryForm(request.POST or None, user=request.user, initial=initial)

    def save() -> HttpResponse:
        memory = memory_remember_answer(actor=request.user, message_id=message_id, draft=form.draft(), request=request)
        _announce(request, memory)
        return redirect(memory)

    refused = partial(_apply_form_errors, form)
    context = {"title": "Remember this", "answer": answer}
    return form_save_or_show(request, form, save=save, refused=refused, template=MEMORY_FORM, context=context)


@login_required
@require_POST
def memory_learn_view(request: PortalRequest, conversation_id: int) -> HttpResponse:
    """Ask for memory proposals from one of your conversations (the task runs in the background)."""
    require_memory_access(user=request.user)
    conversation_get(user=request.user, conversation_id=conversation_id)  # 404 unless it is the user's own
    memory_learning_schedule(conversation_id=conversation_id)
    messages.success(request, "Proposals from this conversation will appear in the memory review queue.")
    return redirect("assistant:conversation", conversation_id)


@login_required
@require_http_methods(["GET", "POST"])
def memory_detail_view(request: PortalRequest, memory_id: int) -> HttpResponse:
    memory = memory_get(user=request.user, memory_id=memory_id)
    editable = can_review(request.user, memory)
    form = MemoryForm(request.POST or None, user=request.user, initial=MemoryForm.initial_for(memory))
    if request.method == "POST":
        require_review(user=request.user, memory=memory)
        if form.is_valid():
            try:
                memory_update(actor=request.user, memory=memory, draft=form.draft(), request=request)
            except ValidationError as error:
                _apply_form_errors(form, error)
            else:
                messages.success(request, "Memory saved.")
                return redirect(memory)
    context = {
        "memory": memory,
        "form": form if editable else None,
        "can_review": editable,
        "can_forget": can_forget(request.user, memory),
        "flagged": _flagged([memory], request.user),
    }
    status = 400 if request.method == "POST" else 200
    return render(request, "memory/memory_detail.html", context, status=status)


@login_required
@require_POST
def memory_review_view(request: PortalRequest, memory_id: int) -> HttpResponse:
    memory = memory_get(user=request.user, memory_id=memory_id)
    require_review(user=request.user, memory=memory)
    approve = request.POST.get("decision") == "approve"
    draft = None
    if "text" in request.POST:
        form = MemoryForm(request.POST, user=request.user)
        if not form.is_valid():
            context = {
                "memory": memory,
                "form": form,
                "can_review": True,
                "can_forget": can_forget(request.user, memory),
            }
            context["flagged"] = _flagged([memory], request.user)
            return render(request, "memory/memory_detail.html", context, status=400)
        draft = form.draft()
    try:
        memory_review(actor=request.user, memory=memory, approve=approve, draft=draft, request=request)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect(memory)
    messages.success(request, "Memory approved." if approve else "Memory rejected.")
    next_url = request.POST.get("next", "")
    if next_url == "queue":
        return redirect("memory:review_queue")
    return redirect(memory)


@login_required
@require_POST
def memory_archive_view(request: PortalRequest, memory_id: int) -> HttpResponse:
    memory = memory_get(user=request.user, memory_id=memory_id)
    memory_archive(actor=request.user, memory=memory, request=request)
    messages.success(request, "Memory archived; the assistant no longer uses it.")
    return redirect(memory)


@login_required
@require_POST
def memory_delete_view(request: PortalRequest, memory_id: int) -> HttpResponse:
    memory = memory_get(user=request.user, memory_id=memory_id)
    require_forget(user=request.user, memory=memory)
    try:
        memory_delete(actor=request.user, memory=memory, request=request)
    except ValidationError as error:  # e.g. a legal hold suspends the deletion
        messages.error(request, " ".join(error.messages))
        return redirect("memory:memory_detail", memory_id=memory_id)
    messages.success(request, "Memory deleted for good.")
    return redirect("memory:memory_list")
