from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from portal.core.types import PortalRequest
from portal.subjects.forms import SubjectRequestForm
from portal.subjects.models import RequestKind, SubjectType
from portal.subjects.selectors import can_handle, subject_request_get, subject_requests_for_user
from portal.subjects.services import (
    subject_bundle_delete,
    subject_bundle_downloaded,
    subject_bundle_path,
    subject_request_create,
)


def _list(request: PortalRequest, *, form: SubjectRequestForm | None = None, status: int = 200) -> HttpResponse:
    context = {
        "requests": list(subject_requests_for_user(user=request.user)[:50]),
        "can_handle": can_handle(request.user),
        "form": form or SubjectRequestForm(),
    }
    return render(request, "subjects/request_list.html", context, status=status)


@login_required
@require_GET
def request_list_view(request: PortalRequest) -> HttpResponse:
    return _list(request)


@login_required
@require_POST
def request_create_view(request: PortalRequest) -> HttpResponse:
    form = SubjectRequestForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            created = subject_request_create(actor=request.user, kind=data["kind"], subject_type=data["subject_type"],
                                             subject_id=data["subject_id"], reason=data["reason"],
                                             request=request)  # fmt: skip
        except ValidationError as refused:
            for message in refused.messages:
                form.add_error(None, message)
        else:
            return redirect("subjects:request_detail", request_id=created.pk)
    return _list(request, form=form, status=400)


@login_required
@require_POST
def request_own_copy_view(request: PortalRequest) -> HttpResponse:
    """Anyone signed in: a copy of what the portal holds about them as a staff member."""
    created = subject_request_create(actor=request.user, kind=RequestKind.ACCESS, subject_type=SubjectType.USER,
                                     subject_id=request.user.pk, request=request)  # fmt: skip
    return redirect("subjects:request_detail", request_id=created.pk)


@login_required
@require_GET
def request_detail_view(request: PortalRequest, request_id: int) -> HttpResponse:
    subject_request = subject_request_get(user=request.user, request_id=request_id)
    template = "subjects/request_detail.html#request-progress" if request.htmx else "subjects/request_detail.html"
    tables = sorted((subject_request.verification.get("tables") or {}).items())
    return render(request, template, {"subject_request": subject_request, "tables": tables})


@login_required
@require_GET
def bundle_download_view(request: PortalRequest, request_id: int) -> FileResponse:
    subject_request = subject_request_get(user=request.user, request_id=request_id)
    path = subject_bundle_path(subject_request)
    if path is None:
        raise Http404("This bundle is not ready, or it was deleted.")
    subject_bundle_downloaded(actor=request.user, subject_request=subject_request, request=request)
    return FileResponse(path.open("rb"), as_attachment=True, content_type="application/zip",
                        filename=f"data-subject-request-{subject_request.pk}.zip")  # fmt: skip


@login_required
@require_POST
def bundle_delete_view(request: PortalRequest, request_id: int) -> HttpResponse:
    subject_request = subject_request_get(user=request.user, request_id=request_id)
    subject_bundle_delete(actor=request.user, subject_request=subject_request, request=request)
    messages.success(request, f"The bundle of request #{subject_request.pk} was deleted.")
    return redirect("subjects:request_detail", request_id=subject_request.pk)
