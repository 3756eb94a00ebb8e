from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from portal.core.forms import ParametersForm, RestoreForm
from portal.core.models import ParameterVersion
from portal.core.parameters import current_version, parameters_effective
from portal.core.services import parameters_restore, parameters_save, require_parameter_manager
from portal.core.types import PortalRequest


@login_required
@require_GET
def home(request: PortalRequest) -> HttpResponse:
    roles = list(request.user.groups.select_related("role").order_by("role__position"))
    return render(request, "core/home.html", {"roles": roles})


@require_GET
def healthz(request: PortalRequest) -> JsonResponse:
    """Liveness and database reachability for load balancers; reveals nothing else."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return JsonResponse({"status": "ok"})
    except Exception:  # noqa: BLE001 - any database failure means "not ready"
        return JsonResponse({"status": "database unavailable"}, status=503)


# ---- shared by the apps' create and edit pages --------------------------------------------------------
def form_save_or_show(
    request: PortalRequest,
    form: forms.BaseForm,
    *,
    save: Callable[[], HttpResponse],
    template: str,
    context: dict[str, Any],
    refused: Callable[[ValidationError], None] | None = None,
) -> HttpResponse:
    """A GET shows `form`; a valid POST runs `save` (the audited service, then its message and redirect).

    A service's refusal (`ValidationError`) goes on the form, by `refused` where the page places it itself; a form
    shown again after a POST answers 400.
    """
    if request.method == "POST" and form.is_valid():
        try:
            return save()
        except ValidationError as error:
            if refused is None:
                form.add_error(None, error)
            else:
                refused(error)
    status = 400 if request.method == "POST" else 200
    return render(request, template, {"form": form, **context}, status=status)


# ---- Settings: the operational parameters ---------------------------------------------------------------
def _settings_page(request: PortalRequest, *, form: ParametersForm | None = None, status: int = 200) -> HttpResponse:
    require_parameter_manager(request.user)
    current = parameters_effective()
    context = {
        "form": form or ParametersForm(current=current),
        "version": current_version(),
        "versions": ParameterVersion.objects.select_related("author")[:20],
        "pinned": [item for item in current if item.source == "environment"],
        "ttl": settings.PORTAL_PARAMETERS_TTL_SECONDS,
    }
    return render(request, "core/settings.html", context, status=status)


@login_required
@require_GET
def settings_view(request: PortalRequest) -> HttpResponse:
    return _settings_page(request)


@login_required
@require_POST
def settings_save_view(request: PortalRequest) -> HttpResponse:
    require_parameter_manager(request.user)
    form = ParametersForm(request.POST, current=parameters_effective())
    if form.is_valid():
        try:
            version = parameters_save(actor=request.user, values=form.values(), reason=form.cleaned_data["reason"])
        except ValidationError as error:
            for message in error.messages:
                form.add_error(None, message)
        else:
            messages.success(request, f"Settings version {version.number} saved; every process uses it within "
                             f"{settings.PORTAL_PARAMETERS_TTL_SECONDS} seconds.")  # fmt: skip
            return redirect("settings")
    return _settings_page(request, form=form, status=400)


@login_required
@require_POST
def settings_restore_view(request: PortalRequest, number: int) -> HttpResponse:
    require_parameter_manager(request.user)
    form = RestoreForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        version = parameters_restore(actor=request.user, number=number, reason=reason)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Back to the values of version {number}, saved as version {version.number}.")
    return redirect("settings")
