from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from audit.services import audit
from portal.core.types import PortalRequest
from portal.retention.forms import HoldForm, LiftForm, PolicyForm
from portal.retention.kinds import KINDS
from portal.retention.models import LegalHold, RetentionPolicyVersion
from portal.retention.selectors import (
    due_overview,
    next_run_at,
    periods_current,
    policy_current,
    require_hold_manager,
    require_retention_manager,
    runs_recent,
)
from portal.retention.services import legal_hold_lift, legal_hold_place, retention_policy_publish


def _page(request: PortalRequest, *, policy_form: PolicyForm | None = None, hold_form: HoldForm | None = None,
          status: int = 200) -> HttpResponse:  # fmt: skip
    user = request.user
    require_retention_manager(user)
    periods = periods_current()
    context: dict[str, Any] = {
        "policy": policy_current(),
        "kinds": [(kind, periods[kind.key]) for kind in KINDS],
        "versions": RetentionPolicyVersion.objects.select_related("author")[:10],
        "policy_form": policy_form or PolicyForm(periods=periods),
        "due": due_overview(user=user),
        "runs": runs_recent(user=user),
        "next_run_at": next_run_at(),
        "can_hold": user.has_perm("retention.manage_legalhold"),
        "hold_form": hold_form or HoldForm(),
        "holds": LegalHold.objects.select_related("placed_by", "lifted_by")[:50],
        "lift_form": LiftForm(),
    }
    return render(request, "retention/overview.html", context, status=status)


def _submit(request: PortalRequest, form: forms.Form, act: Callable[[dict[str, Any]], str]) -> HttpResponse | None:
    """Run `act` on a valid form: its message is shown and the overview reloads. None when the form has errors
    (a service's refusal among them), for the caller to show the page again with them."""
    if not form.is_valid():
        return None
    try:
        done = act(form.cleaned_data)
    except ValidationError as error:
        for message in error.messages:
            form.add_error(None, message)
        return None
    messages.success(request, done)
    return redirect("retention:overview")


@login_required
@require_GET
def overview_view(request: PortalRequest) -> HttpResponse:
    return _page(request)


@login_required
@require_POST
def policy_publish_view(request: PortalRequest) -> HttpResponse:
    require_retention_manager(request.user)
    form = PolicyForm(request.POST)

    def publish(data: dict[str, Any]) -> str:
        version = retention_policy_publish(actor=request.user, periods=form.periods(), reason=data["reason"])
        return f"Retention policy version {version.number} published."

    done = _submit(request, form, publish)
    return done if done is not None else _page(request, policy_form=form, status=400)


@login_required
@require_POST
def run_now_view(request: PortalRequest) -> HttpResponse:
    require_retention_manager(request.user)
    from portal.retention.tasks import retention_run_task

    audit(actor=request.user, action="retention.run_requested", object_type="retention.retentionrun", request=request)
    retention_run_task.delay("manual", request.user.pk)
    messages.success(request, "A retention run was queued; its result appears below when it is done.")
    return redirect("retention:overview")


@login_required
@require_POST
def hold_place_view(request: PortalRequest) -> HttpResponse:
    require_hold_manager(request.user)
    form = HoldForm(request.POST)

    def place(data: dict[str, Any]) -> str:
        hold = legal_hold_place(
            actor=request.user, subject=data["subject"], subject_id=data["subject_id"], reason=data["reason"]
        )
        return f"Legal hold #{hold.pk} placed."

    done = _submit(request, form, place)
    return done if done is not None else _page(request, hold_form=form, status=400)


@login_required
@require_POST
def hold_lift_view(request: PortalRequest, hold_id: int) -> HttpResponse:
    require_hold_manager(request.user)
    hold = get_object_or_404(LegalHold, pk=hold_id)
    form = LiftForm(request.POST)
    if form.is_valid():
        try:
            legal_hold_lift(actor=request.user, hold=hold, reason=form.cleaned_data["reason"])
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"Legal hold #{hold.pk} lifted.")
    else:
        messages.error(request, "Give a reason for lifting the hold.")
    return redirect("retention:overview")
