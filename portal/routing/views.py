from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from portal.core.types import PortalRequest
from portal.routing import selectors
from portal.routing.charts import daily_cost_chart
from portal.routing.forms import UsageFilterForm
from portal.routing.router import cooldowns


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


@login_required
@require_GET
def catalog_view(request: PortalRequest) -> HttpResponse:
    models = selectors.catalog_list(user=request.user)
    rows = [(model, cooldowns.remaining(model.key)) for model in models]
    context = {
        "rows": rows,
        "task_tiers": sorted(selectors.task_tiers().items()),
        "budgets": selectors.budgets_enabled(),
        "currency": settings.ROUTING_CURRENCY,
        "offline_fallback": settings.ROUTING_OFFLINE_FALLBACK,
        "can_edit": request.user.has_perm("routing.change_catalogmodel") and request.user.is_staff,
    }
    return render(request, "routing/catalog.html", context)
