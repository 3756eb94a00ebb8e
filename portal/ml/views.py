from __future__ import annotations

from typing import Protocol

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from portal.core.types import PortalRequest
from portal.ml import selectors, services
from portal.ml.charts import calibration_bars, per_class_bars
from portal.ml.forms import FlagReviewForm, RelabelForm, TrainForm
from portal.ml.models import FlagStatus, ModelVersion, Purpose
from portal.routing.types import TASK_TYPES


@login_required
@require_GET
def overview_view(request: PortalRequest) -> HttpResponse:
    selectors.require_permission(request.user, services.TRAIN_PERMISSION, services.ERROR_NO_TRAIN)
    context = {
        "overview": selectors.models_overview(user=request.user),
        "form": TrainForm(),
        "can_activate": request.user.has_perm(services.ACTIVATE_PERMISSION),
    }
    return render(request, "ml/overview.html", context)


@login_required
@require_POST
def train_view(request: PortalRequest) -> HttpResponse:
    selectors.require_permission(request.user, services.TRAIN_PERMISSION, services.ERROR_NO_TRAIN)
    form = TrainForm(request.POST)
    if not form.is_valid():
        context = {"overview": selectors.models_overview(user=request.user), "form": form}
        return render(request, "ml/overview.html", context, status=400)
    parameters = {}
    if form.cleaned_data["purpose"] == Purpose.CUSTOMER_CHURN and form.cleaned_data.get("churn_days"):
        parameters["churn_days"] = form.cleaned_data["churn_days"]
    try:
        run = services.training_request(actor=request.user, purpose=form.cleaned_data["purpose"], parameters=parameters)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("ml:overview")
    return redirect("ml:run_detail", run_id=run.pk)


@login_required
@require_GET
def run_detail_view(request: PortalRequest, run_id: int) -> HttpResponse:
    run = selectors.run_get(user=request.user, run_id=run_id)
    if request.htmx and request.GET.get("row"):
        return render(request, "ml/_run_row.html", {"run": run})  # a row of the overview polling
    template = "ml/run_detail.html#run-progress" if request.htmx else "ml/run_detail.html"
    return render(request, template, {"run": run})


@login_required
@require_GET
def model_detail_view(request: PortalRequest, model_id: int) -> HttpResponse:
    model = selectors.model_get(user=request.user, model_id=model_id)
    active = selectors.active_of(purpose=model.purpose)
    context = {
        "model": model,
        "active": active if active is not None and active.pk != model.pk else None,
        "metrics": model.metrics,
        "per_class": per_class_bars(model.metrics),
        "calibration": calibration_bars(model.metrics),
        "beats_baseline": services.beats_baseline(model),
        "can_activate": request.user.has_perm(services.ACTIVATE_PERMISSION),
    }
    return render(request, "ml/model_detail.html", context)


class _ModelChange(Protocol):
    def __call__(self, *, actor: User, model: ModelVersion) -> ModelVersion: ...


def _model_change_and_return(
    request: PortalRequest, *, model_id: int, change: _ModelChange, outcome: str
) -> HttpResponse:
    """Activate and retire share this: the service's refusal or `outcome` is shown on the model's page."""
    model = selectors.model_get(user=request.user, model_id=model_id)
    try:
        change(actor=request.user, model=model)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"{model.get_purpose_display()} v{model.version} {outcome}")
    return redirect("ml:model_detail", model_id=model.pk)


@login_required
@require_POST
def model_activate_view(request: PortalRequest, model_id: int) -> HttpResponse:
    return _model_change_and_return(
        request, model_id=model_id, change=services.model_activate, outcome="is now in use."
    )


@login_required
@require_POST
def model_retire_view(request: PortalRequest, model_id: int) -> HttpResponse:
    return _model_change_and_return(
        request, model_id=model_id, change=services.model_retire, outcome="is retired; the baseline answers."
    )


@login_required
@require_GET
def relabel_view(request: PortalRequest) -> HttpResponse:
    items = selectors.relabel_queue(user=request.user)
    return render(request, "ml/relabel.html", {"items": items, "task_types": TASK_TYPES})


@login_required
@require_POST
def relabel_set_view(request: PortalRequest, message_id: int) -> HttpResponse:
    selectors.require_permission(request.user, services.RELABEL_PERMISSION, services.ERROR_NO_RELABEL)
    form = RelabelForm(request.POST)
    if not form.is_valid():
        return HttpResponse(" ".join(str(e) for e in form.errors.get("task_type", [])), status=400)
    try:
        services.task_label_set(actor=request.user, message_id=message_id, task_type=form.cleaned_data["task_type"])
    except ValidationError as error:
        return HttpResponse(" ".join(error.messages), status=400)
    if request.htmx:
        item = selectors.queue_item(user=request.user, message_id=message_id)
        return render(request, "ml/_relabel_row.html", {"item": item, "task_types": TASK_TYPES})
    return redirect("ml:relabel")


@login_required
@require_GET
def flags_view(request: PortalRequest) -> HttpResponse:
    context = {
        "flags": selectors.flags_for_review(user=request.user),
        "reviewed": selectors.flags_for_review(user=request.user, status=FlagStatus.CONFIRMED, limit=20),
        "suggestions": selectors.document_suggestions(user=request.user),
    }
    return render(request, "ml/flags.html", context)


@login_required
@require_POST
def flag_review_view(request: PortalRequest, flag_id: int) -> HttpResponse:
    flag = selectors.flag_get(user=request.user, flag_id=flag_id)
    form = FlagReviewForm(request.POST)
    if not form.is_valid():
        return HttpResponse(" ".join(str(e) for e in form.errors.get("verdict", [])), status=400)
    try:
        flag = services.flag_review(actor=request.user, flag=flag, verdict=form.cleaned_data["verdict"])
    except ValidationError as error:
        return HttpResponse(" ".join(error.messages), status=400)
    if request.htmx:
        return render(request, "ml/_flag_row.html", {"flag": flag})
    return redirect("ml:flags")
