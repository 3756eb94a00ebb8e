from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.db import transaction
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit import links
from audit.chain import HASHED_FIELDS, event_hash
from audit.coverage import audited_actions
from audit.exports import as_async, render_rows
from audit.filters import AuditFilter
from audit.forms import AuditFilterForm, ExportRequestForm
from audit.models import ExportFormat, ExportStatus
from audit.selectors import (
    EXPORT_PERMISSION,
    VERIFY_PERMISSION,
    audit_event_get,
    audit_event_neighbours,
    audit_event_page,
    audit_events_matching,
    audit_export_get,
    audit_export_rows,
    audit_exports_for_user,
    audit_head_seq,
    audit_verification_get,
    audit_verifications_for_user,
    require_export,
    role_names,
)
from audit.services import audit_export_record, audit_export_request, audit_verification_request
from portal.core.types import PortalRequest

CONTENT_TYPES = {ExportFormat.CSV: "text/csv; charset=utf-8", ExportFormat.JSONL: "application/x-ndjson"}


def _filter_form(request: PortalRequest) -> AuditFilterForm:
    return AuditFilterForm(request.GET or None, roles=role_names())


def _query_string(audit_filter: AuditFilter) -> str:
    return urlencode(audit_filter.to_dict())


@login_required
@require_GET
def event_list_view(request: PortalRequest) -> HttpResponse:
    form = _filter_form(request)
    audit_filter = AuditFilter()
    if form.is_bound and not form.is_valid():
        audit_events_matching(user=request.user, audit_filter=audit_filter)  # permission first: 403 beats 400
        return render(request, "audit/event_list.html", {"form": form, "page": None}, status=400)
    before = after = None
    if form.is_bound:
        audit_filter = form.audit_filter()
        before, after = form.cleaned_data.get("before"), form.cleaned_data.get("after")
    page = audit_event_page(user=request.user, audit_filter=audit_filter, before=before, after=after)
    object_link = None
    if audit_filter.object_type and audit_filter.object_id:
        object_link = links.object_url(audit_filter.object_type, audit_filter.object_id, viewer=request.user)
    context = {
        "form": form,
        "page": page,
        "query": _query_string(audit_filter),
        "audit_filter": audit_filter,
        "object_link": object_link,
        "actions": audited_actions(),
        "can_export": request.user.has_perm(EXPORT_PERMISSION),
        "can_verify": request.user.has_perm(VERIFY_PERMISSION),
        "background_threshold": settings.AUDIT_EXPORT_BACKGROUND_THRESHOLD,
    }
    template = "audit/event_list.html#event-results" if request.htmx else "audit/event_list.html"
    return render(request, template, context)


@login_required
@require_GET
def event_detail_view(request: PortalRequest, seq: int) -> HttpResponse:
    event = audit_event_get(user=request.user, seq=seq)
    previous_seq, next_seq = audit_event_neighbours(event=event)
    fields = {name: getattr(event, name) for name in HASHED_FIELDS if name != "actor_id"}
    fields["actor_id"] = event.actor_id
    context = {
        "event": event,
        "details_json": json.dumps(event.details, indent=2, sort_keys=True, ensure_ascii=False),
        "hash_matches": event_hash(fields) == event.hash,
        "previous_seq": previous_seq,
        "next_seq": next_seq,
        "object_link": links.object_url(event.object_type, event.object_id, viewer=request.user),
        "object_events_query": urlencode({"object_type": event.object_type, "object_id": event.object_id}),
        "actor_events_query": urlencode({"actor": event.actor_username}),
        "related": links.related_links(event.details, viewer=request.user),
    }
    return render(request, "audit/event_detail.html", context)


@login_required
@require_GET
def export_view(request: PortalRequest, export_format: str) -> HttpResponse | StreamingHttpResponse:
    """Stream the filtered range as CSV or JSONL, in chain order, up to the head at the time of the request."""
    require_export(user=request.user)
    form = _filter_form(request)
    if form.is_bound and not form.is_valid():
        return render(request, "audit/event_list.html", {"form": form, "page": None}, status=400)
    audit_filter = form.audit_filter() if form.is_bound else AuditFilter()
    with transaction.atomic():
        up_to_seq = audit_head_seq()
        events = audit_events_matching(user=request.user, audit_filter=audit_filter)
        count = events.filter(seq__lte=up_to_seq).count()
        audit_export_record(
            actor=request.user, audit_filter=audit_filter, export_format=export_format, count=count,
            up_to_seq=up_to_seq, request=request,
        )  # fmt: skip

    def pieces() -> Iterator[str]:
        return render_rows(audit_export_rows(events, up_to_seq=up_to_seq), export_format)

    content = as_async(pieces) if isinstance(request, ASGIRequest) else pieces()
    response = StreamingHttpResponse(content, content_type=CONTENT_TYPES[ExportFormat(export_format)])
    response["Content-Disposition"] = f'attachment; filename="audit-events-to-{up_to_seq}.{export_format}"'
    response["X-Audit-Export-Count"] = str(count)
    return response


@login_required
@require_POST
def export_request_view(request: PortalRequest) -> HttpResponse:
    require_export(user=request.user)
    filter_form = _filter_form(request)
    # the filter travels in the query string of the form's action, the format in the POST body
    format_form = ExportRequestForm(request.POST)
    if (filter_form.is_bound and not filter_form.is_valid()) or not format_form.is_valid():
        return HttpResponse("Invalid export request.", status=400)
    audit_filter = filter_form.audit_filter() if filter_form.is_bound else AuditFilter()
    export = audit_export_request(
        actor=request.user, audit_filter=audit_filter, export_format=format_form.cleaned_data["export_format"],
        request=request,
    )  # fmt: skip
    return redirect("audit:export_status", export_id=export.pk)


@login_required
@require_GET
def export_list_view(request: PortalRequest) -> HttpResponse:
    exports = list(audit_exports_for_user(user=request.user)[:50])
    return render(request, "audit/export_list.html", {"exports": exports})


@login_required
@require_GET
def export_status_view(request: PortalRequest, export_id: int) -> HttpResponse:
    export = audit_export_get(user=request.user, export_id=export_id)
    template = "audit/export_status.html#export-progress" if request.htmx else "audit/export_status.html"
    return render(request, template, {"export": export, "running": export.status in {"queued", "running"}})


@login_required
@require_GET
def export_download_view(request: PortalRequest, export_id: int) -> FileResponse:
    export = audit_export_get(user=request.user, export_id=export_id)
    if export.status != ExportStatus.DONE or not export.file_name:
        raise Http404("This export is not ready.")
    path = settings.AUDIT_EXPORT_DIR / export.file_name
    if not path.is_file():
        raise Http404("This export file is gone.")
    return FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=f"audit-export-{export.pk}.{export.export_format}",
        content_type=CONTENT_TYPES[ExportFormat(export.export_format)],
    )


# ---- verifying the chain ----------------------------------------------------------------------------------
@login_required
@require_http_methods(["GET", "POST"])
def verify_view(request: PortalRequest) -> HttpResponse:
    """The "Verify the chain" page: the person's latest run and the button; POST queues a new run."""
    runs = audit_verifications_for_user(user=request.user)  # 403 without the permission, GET or POST
    if request.method == "POST":
        verification = audit_verification_request(actor=request.user, request=request)
        if request.htmx:
            return render(request, "audit/verify.html#verification", {"verification": verification})
        return redirect("audit:verify_status", verification_id=verification.pk)
    return render(request, "audit/verify.html", {"verification": runs.first(), "earlier": list(runs[1:11])})


@login_required
@require_GET
def verify_status_view(request: PortalRequest, verification_id: int) -> HttpResponse:
    verification = audit_verification_get(user=request.user, verification_id=verification_id)
    if request.htmx:
        return render(request, "audit/verify.html#verification", {"verification": verification})
    runs = audit_verifications_for_user(user=request.user).exclude(pk=verification.pk)
    return render(request, "audit/verify.html", {"verification": verification, "earlier": list(runs[:10])})
