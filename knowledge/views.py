from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from audit.services import audit
from knowledge import selectors, services
from knowledge.consumers import knowledge_base_consumers
from knowledge.forms import GrantForm, KnowledgeBaseForm, MoveForm, RestrictionForm, SearchForm, UploadForm
from knowledge.models import Document, KnowledgeBase
from portal.core.types import PortalRequest

SEARCH_RESULTS = 10
CHUNKS_PER_PAGE_LIMIT = 500


def _access_rows(knowledge_base: KnowledgeBase) -> list[dict[str, object]]:
    from guardian.shortcuts import get_groups_with_perms, get_users_with_perms

    rows: list[dict[str, object]] = []
    groups: Any = get_groups_with_perms(knowledge_base, attach_perms=True)
    users: Any = get_users_with_perms(knowledge_base, attach_perms=True, with_group_users=False)
    for group, perms in groups.items():
        rows.append({"kind": "Role", "name": group.name, "level": _level_of(perms)})
    for user, perms in users.items():
        rows.append({"kind": "User", "name": user.get_username(), "level": _level_of(perms)})
    return rows


def _readers(knowledge_base: KnowledgeBase) -> dict[str, object]:
    """Who may read the base, for every viewer: the roles by name, people granted one by one as a count."""
    from guardian.shortcuts import get_groups_with_perms, get_users_with_perms

    groups: Any = get_groups_with_perms(knowledge_base, attach_perms=True)
    roles = sorted(group.name for group, perms in groups.items() if "view_knowledgebase" in perms)
    people = get_users_with_perms(knowledge_base, with_group_users=False, only_with_perms_in=["view_knowledgebase"])
    return {"roles": roles, "people": len(people)}


def _level_of(perms: list[str]) -> str:
    for level in ("manage", "change", "view"):
        if f"{level}_knowledgebase" in perms:
            return level
    return "none"


@login_required
@require_GET
def knowledge_base_list(request: PortalRequest) -> HttpResponse:
    knowledge_bases = selectors.knowledge_bases_for_user(user=request.user)
    can_create = selectors.may_create_knowledge_base(user=request.user)
    return render(
        request,
        "knowledge/knowledge_base_list.html",
        {"knowledge_bases": knowledge_bases, "form": KnowledgeBaseForm() if can_create else None},
    )


@login_required
@require_POST
def knowledge_base_create(request: PortalRequest) -> HttpResponse:
    selectors.require_knowledge_base_creation(user=request.user)
    form = KnowledgeBaseForm(request.POST)
    if form.is_valid():
        knowledge_base = services.knowledge_base_create(actor=request.user, **form.cleaned_data)
        messages.success(request, f"Knowledge base {knowledge_base.name} created.")
        return redirect("knowledge:knowledge_base_detail", pk=knowledge_base.pk)
    knowledge_bases = selectors.knowledge_bases_for_user(user=request.user)
    return render(
        request, "knowledge/knowledge_base_list.html", {"knowledge_bases": knowledge_bases, "form": form}, status=400
    )


def _detail_context(request: PortalRequest, knowledge_base: KnowledgeBase) -> dict[str, object]:
    documents = list(selectors.documents_for_user(user=request.user, knowledge_base=knowledge_base))
    can_manage = request.user.has_perm("knowledge.manage_knowledgebase", knowledge_base)
    return {
        "knowledge_base": knowledge_base,
        "documents": documents,
        "pending": any(not document.is_final for document in documents),
        "can_change": request.user.has_perm("knowledge.change_knowledgebase", knowledge_base),
        "can_manage": can_manage,
        "access_rows": _access_rows(knowledge_base) if can_manage else [],
        "readers": _readers(knowledge_base),
        "consumers": knowledge_base_consumers(knowledge_base_id=knowledge_base.pk, viewer=request.user),
    }


@login_required
@require_GET
def knowledge_base_detail(request: PortalRequest, pk: int) -> HttpResponse:
    knowledge_base = selectors.knowledge_base_for_user(user=request.user, pk=pk)
    context = _detail_context(request, knowledge_base)
    context["upload_form"] = UploadForm()
    context["grant_form"] = GrantForm()
    template = "knowledge/knowledge_base_detail.html"
    if request.htmx and request.GET.get("fragment") == "documents":
        template += "#document-table"
    return render(request, template, context)


@login_required
@require_POST
def knowledge_base_grant(request: PortalRequest, pk: int) -> HttpResponse:
    knowledge_base = selectors.knowledge_base_for_user(user=request.user, pk=pk, permission="manage")
    form = GrantForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.knowledge_base_grant(
                actor=request.user,
                knowledge_base=knowledge_base,
                level=data["level"],
                group=data["group"],
                user=data["user"],
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, "Access updated.")
            return redirect("knowledge:knowledge_base_detail", pk=pk)
    context = _detail_context(request, knowledge_base)
    context.update({"upload_form": UploadForm(), "grant_form": form})
    return render(request, "knowledge/knowledge_base_detail.html", context, status=400)


@login_required
@require_POST
def document_upload(request: PortalRequest, pk: int) -> HttpResponse:
    knowledge_base = selectors.knowledge_base_for_user(user=request.user, pk=pk, permission="change")
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        if request.htmx:
            return render(request, "knowledge/upload_result.html", {"form": form, "results": []}, status=400)
        context = _detail_context(request, knowledge_base)
        context.update({"upload_form": form, "grant_form": GrantForm()})
        return render(request, "knowledge/knowledge_base_detail.html", context, status=400)
    results = []
    # One transaction per file: a bad file never undoes the others.
    for uploaded in form.cleaned_data["uploads"]:
        limit = services.max_upload_bytes()
        data = None if uploaded.size > limit else uploaded.read()
        with transaction.atomic():
            results.append(
                services.document_upload(
                    actor=request.user,
                    knowledge_base=knowledge_base,
                    filename=uploaded.name,
                    data=data,
                    size=uploaded.size,
                    restricted_roles=form.cleaned_data["restricted_to_roles"],
                )
            )
    if request.htmx:
        response = render(request, "knowledge/upload_result.html", {"results": results})
        response["HX-Trigger"] = "documents-changed"  # the documents table shows the new rows at once
        return response
    for result in results:
        if result.document is None:
            messages.error(request, f"{result.filename}: not uploaded. {result.error}")
        else:
            messages.info(request, f"{result.filename}: {result.outcome.replace('_', ' ')}")
    return redirect("knowledge:knowledge_base_detail", pk=pk)


@login_required
@require_GET
def document_status(request: PortalRequest, pk: int) -> HttpResponse:
    """The status row of one document, polled by the upload list until it is ready or failed."""
    document = selectors.document_for_user(user=request.user, pk=pk)
    response = render(request, "knowledge/upload_result.html#document-status", {"document": document})
    if document.is_final:  # its row in the documents table changes too
        response["HX-Trigger"] = "documents-changed"
    return response


@login_required
@require_GET
def document_detail(request: PortalRequest, pk: int) -> HttpResponse:
    document = selectors.document_for_user(user=request.user, pk=pk)
    chunks = list(selectors.document_chunks(document=document)[:CHUNKS_PER_PAGE_LIMIT])
    # Each page gets one anchor (#page-N, what citations link to), at the first chunk that reaches it.
    anchored = 0
    for chunk in chunks:
        last = chunk.page_end or chunk.page_number or 0
        first = max(chunk.page_number or 0, anchored + 1)
        chunk.page_anchors = list(range(first, last + 1)) if chunk.page_number else []  # type: ignore[attr-defined]
        anchored = max(anchored, last)
    can_change = request.user.has_perm("knowledge.change_knowledgebase", document.knowledge_base)
    destinations = _move_destinations(request, document) if can_change else KnowledgeBase.objects.none()
    audit(actor=request.user, action="knowledge.document_viewed", target=document, request=request)
    return render(
        request,
        "knowledge/document_detail.html",
        {
            "document": document,
            "chunks": chunks,
            "can_change": can_change,
            "restriction_form": RestrictionForm(initial={"restricted_to_roles": document.restricted_to_roles.all()}),
            "restricted_roles": list(document.restricted_to_roles.all()),
            "move_form": MoveForm(knowledge_bases=destinations) if destinations.exists() else None,
        },
    )


def _move_destinations(request: PortalRequest, document: Document) -> Any:
    return selectors.knowledge_bases_for_user(user=request.user, permission="change").exclude(
        pk=document.knowledge_base_id
    )


@login_required
@require_GET
def document_download(request: PortalRequest, pk: int) -> FileResponse:
    document = selectors.document_for_user(user=request.user, pk=pk)
    if not document.file:
        raise Http404("The original file is not stored.")
    audit(actor=request.user, action="knowledge.document_downloaded", target=document, request=request)
    return FileResponse(
        document.file.open("rb"),
        as_attachment=True,
        filename=document.original_filename,
        content_type=document.content_type or "application/octet-stream",
    )


@login_required
@require_POST
def document_reprocess(request: PortalRequest, pk: int) -> HttpResponse:
    document = selectors.document_for_user(user=request.user, pk=pk, permission="change")
    try:
        services.document_reprocess(actor=request.user, document=document)
    except ValidationError as error:
        messages.error(request, "; ".join(error.messages))
    else:
        messages.success(request, "The document is queued for processing again.")
    return redirect("knowledge:document_detail", pk=pk)


@login_required
@require_POST
def document_restrict(request: PortalRequest, pk: int) -> HttpResponse:
    document = selectors.document_for_user(user=request.user, pk=pk, permission="change")
    form = RestrictionForm(request.POST)
    if not form.is_valid():
        return HttpResponse("Invalid roles.", status=400)
    services.document_set_restriction(
        actor=request.user, document=document, roles=list(form.cleaned_data["restricted_to_roles"])
    )
    messages.success(request, "Document access updated.")
    return redirect("knowledge:document_detail", pk=pk)


@login_required
@require_POST
def document_move(request: PortalRequest, pk: int) -> HttpResponse:
    document = selectors.document_for_user(user=request.user, pk=pk, permission="change")
    form = MoveForm(request.POST, knowledge_bases=_move_destinations(request, document))
    if not form.is_valid():
        return HttpResponse("Choose a knowledge base you may change.", status=400)
    try:
        destination = form.cleaned_data["knowledge_base"]
        services.document_move(actor=request.user, document=document, knowledge_base=destination)
    except ValidationError as error:
        messages.error(request, "; ".join(error.messages))
    else:
        messages.success(request, f"Moved to {destination.name}.")
    return redirect("knowledge:document_detail", pk=pk)


@login_required
@require_POST
def document_delete(request: PortalRequest, pk: int) -> HttpResponse:
    document = selectors.document_for_user(user=request.user, pk=pk, permission="change")
    knowledge_base_id = document.knowledge_base_id
    title = document.title
    services.document_delete(actor=request.user, document=document)
    messages.success(request, f"{title} deleted.")
    if request.htmx:
        return HttpResponseClientRedirect(reverse("knowledge:knowledge_base_detail", args=[knowledge_base_id]))
    return redirect("knowledge:knowledge_base_detail", pk=knowledge_base_id)


@login_required
@require_GET
def search(request: PortalRequest) -> HttpResponse:
    knowledge_bases = selectors.knowledge_bases_for_user(user=request.user)
    form = SearchForm(request.GET or None, knowledge_bases=knowledge_bases)
    results: list[selectors.RetrievedChunk] = []
    query = ""
    searched_as: list[str] = []
    status = 200
    if request.GET:
        if form.is_valid():
            query = form.cleaned_data["q"].strip()
            chosen = form.cleaned_data["kb"]
            if query:
                results = selectors.retrieve(
                    user=request.user,
                    query=query,
                    knowledge_bases=[chosen] if chosen else None,
                    k=SEARCH_RESULTS,
                    mode=form.cleaned_data["mode"] or "hybrid",
                    snippets=True,
                    searched_as=searched_as,
                )
        else:
            status = 400
    template = "knowledge/search.html#search-results" if request.htmx else "knowledge/search.html"
    return render(
        request,
        template,
        {
            "form": form,
            "results": results,
            "query": query,
            "searched_as": searched_as[0] if searched_as else "",
            "has_knowledge_bases": knowledge_bases.exists(),
        },
        status=status,
    )
