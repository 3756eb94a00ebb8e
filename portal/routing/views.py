from __future__ import annotations

import os
from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from portal.core.parameters import parameter_value
from portal.core.types import PortalRequest
from portal.routing import selectors
from portal.routing.charts import daily_cost_chart
from portal.routing.forms import BudgetForm, UsageFilterForm
from portal.routing.models import Budget, CatalogModel
from portal.routing.router import cooldowns
from portal.routing.services import (
    CHANGE_CATALOG_PERMISSION,
    CONNECTION_TEST_PROMPT,
    budget_delete,
    budget_save,
    model_test_connection,
)


@login_required
@require_GET
def usage_view(request: PortalRequest) -> HttpResponse:
    selectors.usage_access_check(user=request.user)
    form = UsageFilterForm(request.GET or None)
    if request.GET and not form.is_valid():
        return render(request, "routing/usage.html", {"form": form}, status=400)
    days = (form.cleaned_data.get("days") if form.is_bound else None) or 30
    report = selectors.usage_report(user=request.user, days=days)
    context = {
        "form": form,
        "report": report,
        "chart": daily_cost_chart(report.by_day, currency=settings.ROUTING_CURRENCY),
        "currency": settings.ROUTING_CURRENCY,
    }
    template = "routing/usage.html#usage-report" if request.htmx else "routing/usage.html"
    return render(request, template, context)


@dataclass(frozen=True)
class CatalogRow:
    model: CatalogModel
    cooling: float
    key_status: str  # "set", "missing" or "" (the model needs no key variable)
    health: selectors.ModelHealth | None


def _key_status(model: CatalogModel) -> str:
    """Whether the key variable is set in this process's environment; its value is never read further."""
    if not model.api_key_env:
        return ""
    return "set" if os.environ.get(model.api_key_env) or os.environ.get(f"{model.api_key_env}_FILE") else "missing"


@login_required
@require_POST
def model_test_view(request: PortalRequest, model_id: int) -> HttpResponse:
    """Test one model's connection (HTMX: the result replaces the button's cell; without JS: the page again)."""
    model = get_object_or_404(selectors.catalog_list(user=request.user), pk=model_id)
    result = model_test_connection(actor=request.user, model=model)
    if request.htmx:
        return render(request, "routing/_connection_test.html", {"model": model, "result": result})
    (messages.success if result.ok else messages.error)(request, result.message)
    return redirect("routing:catalog")


@login_required
@require_GET
def catalog_view(request: PortalRequest) -> HttpResponse:
    models = list(selectors.catalog_list(user=request.user))
    health = selectors.model_health(keys=[model.key for model in models])
    rows = [
        CatalogRow(model, cooldowns.remaining(model.key), _key_status(model), health.get(model.key)) for model in models
    ]
    context = {
        "rows": rows,
        "can_test": request.user.has_perm(CHANGE_CATALOG_PERMISSION),
        "test_prompt": CONNECTION_TEST_PROMPT,
        "default_budget": parameter_value("default_budget_per_user"),
        "task_tiers": sorted(selectors.task_tiers().items()),
        "budgets": selectors.budgets_enabled(),
        "currency": settings.ROUTING_CURRENCY,
        "offline_fallback": settings.ROUTING_OFFLINE_FALLBACK,
        "can_edit": request.user.has_perm("routing.change_catalogmodel") and request.user.is_staff,
    }
    return render(request, "routing/catalog.html", context)


# ---- budgets ----------------------------------------------------------------------------------------------
def _budgets_context(request: PortalRequest, form: BudgetForm, editing: Budget | None = None) -> dict[str, object]:
    return {
        "budgets": selectors.budgets_for_management(user=request.user),
        "form": form,
        "editing": editing,
        "currency": settings.ROUTING_CURRENCY,
        "default_budget": parameter_value("default_budget_per_user"),
        "can_add": request.user.has_perm("routing.add_budget"),
        "can_change": request.user.has_perm("routing.change_budget"),
        "can_delete": request.user.has_perm("routing.delete_budget"),
    }


@login_required
def budgets_view(request: PortalRequest) -> HttpResponse:
    """Every budget, and a form for a new one (POST creates it)."""
    selectors.budgets_for_management(user=request.user)  # 403 for whoever may not see budgets
    if request.method != "POST":
        return render(request, "routing/budgets.html", _budgets_context(request, BudgetForm()))
    return _budget_post(request, BudgetForm(request.POST))


def _budget_post(request: PortalRequest, form: BudgetForm, editing: Budget | None = None) -> HttpResponse:
    """Save a posted budget form (new or changed) through the audited service, or show it again with why not."""
    if form.is_valid():
        try:
            budget_save(actor=request.user, budget=form.save(commit=False))
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, "Budget saved.")
            return redirect("routing:budgets")
    return render(request, "routing/budgets.html", _budgets_context(request, form, editing), status=400)


@login_required
def budget_edit_view(request: PortalRequest, budget_id: int) -> HttpResponse:
    budget = get_object_or_404(selectors.budgets_for_management(user=request.user), pk=budget_id)
    if request.method != "POST":
        return render(request, "routing/budgets.html", _budgets_context(request, BudgetForm(instance=budget), budget))
    return _budget_post(request, BudgetForm(request.POST, instance=budget), budget)


@login_required
@require_POST
def budget_delete_view(request: PortalRequest, budget_id: int) -> HttpResponse:
    budget = get_object_or_404(selectors.budgets_for_management(user=request.user), pk=budget_id)
    budget_delete(actor=request.user, budget=budget)
    messages.success(request, "Budget deleted.")
    return redirect("routing:budgets")
