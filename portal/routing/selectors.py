"""Reads of the routing app: the catalog, spend for budgets, usage reports."""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Aggregate, Count, DecimalField, FloatField, Max, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from governance.gate import Destination
from portal.core.config_cache import config_cached
from portal.core.memberships import user_role_names
from portal.core.types import UserLike
from portal.routing.models import Budget, CatalogModel, TaskTier, Usage
from portal.routing.router import OFFLINE_DEPLOYMENT, Deployment

DEFAULT_TASK_TIERS: dict[str, str] = {
    "routine": "economy",
    "summarize": "economy",
    "draft": "standard",
    "analyze": "premium",
    "research": "research",
}
VIEW_USAGE_PERMISSION = "routing.view_usage"
VIEW_CATALOG_PERMISSION = "routing.view_catalogmodel"


def model_display_names(*, keys: list[str]) -> dict[str, str]:
    """Catalog key ("model:3", "offline") -> the name people know the model by; unknown keys are left out.

    Names of catalog models are not secret (every answer's details show the model that wrote it)."""
    names = {OFFLINE_DEPLOYMENT.key: OFFLINE_DEPLOYMENT.display_name} if OFFLINE_DEPLOYMENT.key in keys else {}
    catalog = config_cached("routing.display_names", _display_names_load)  # every answer's details show them
    for key in keys:
        if key in catalog:
            names[key] = catalog[key]
    return names


def _display_names_load() -> dict[str, str]:
    return {f"model:{pk}": name for pk, name in CatalogModel.objects.values_list("pk", "display_name")}


def catalog_enabled() -> list[CatalogModel]:
    """The enabled models in the catalog's order: kept per process until the catalog changes anywhere
    (portal.core.config_cache); each caller gets its own copies."""
    kept = config_cached("routing.catalog_enabled", _catalog_enabled_load)
    return [copy.copy(model) for model in kept]


def _catalog_enabled_load() -> tuple[CatalogModel, ...]:
    return tuple(CatalogModel.objects.filter(enabled=True).order_by("order", "id"))


def catalog_destinations() -> list[Destination]:
    """The enabled models as egress destinations, in the catalog's order (tier, then order)."""
    return [model.destination() for model in CatalogModel.objects.filter(enabled=True)]


def deployment_from(model: CatalogModel) -> Deployment:
    return Deployment(
        key=model.key,
        display_name=model.display_name,
        provider=model.provider,
        litellm_model=model.litellm_model,
        api_base=model.api_base,
        api_key_env=model.api_key_env,
        timeout_seconds=model.timeout_seconds,
        input_price_per_million=model.input_price_per_million,
        output_price_per_million=model.output_price_per_million,
    )


def budgets_in_force() -> list[Budget]:
    """Every enabled budget with its role, in the budgets' order: kept per process until a budget or a role
    changes anywhere (portal.core.config_cache; a renamed role renames whose spending counts); copies."""
    return [copy.copy(budget) for budget in config_cached("routing.budgets_in_force", _budgets_in_force_load)]


def _budgets_in_force_load() -> tuple[Budget, ...]:
    return tuple(Budget.objects.filter(enabled=True).select_related("role"))


def task_tiers() -> dict[str, str]:
    return dict(config_cached("routing.task_tiers", _task_tiers_load))


def _task_tiers_load() -> dict[str, str]:
    mapping = dict(DEFAULT_TASK_TIERS)
    mapping.update(dict(TaskTier.objects.values_list("task_type", "tier")))
    return mapping


def role_names(user: UserLike) -> list[str]:
    return user_role_names(user)


def period_start(period: str, now: dt.datetime | None = None) -> dt.datetime:
    local = timezone.localtime(now or timezone.now())
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return start.replace(day=1) if period == "month" else start


def _sum_cost(queryset: QuerySet[Usage]) -> Decimal:
    zero = Value(Decimal(0), output_field=DecimalField(max_digits=14, decimal_places=8))
    total: Decimal = queryset.aggregate(total=Coalesce(Sum("cost"), zero))["total"]
    return total


def spend_of_user(*, user_id: int, since: dt.datetime) -> Decimal:
    return _sum_cost(Usage.objects.filter(user_id=user_id, created_at__gte=since))


def spend_of_role(*, role_name: str, since: dt.datetime) -> Decimal:
    return _sum_cost(Usage.objects.filter(roles__contains=[role_name], created_at__gte=since))


# ---- the usage page ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class UsageReport:
    since: dt.date
    days: int
    totals: dict[str, Any]
    by_day: list[dict[str, Any]]
    by_user: list[dict[str, Any]]
    by_role: list[dict[str, Any]]
    by_model: list[dict[str, Any]]


def _grouped(queryset: QuerySet[Usage], field: str) -> list[dict[str, Any]]:
    return list(
        queryset.values(field)
        .annotate(
            calls=Count("id"),
            errors=Count("id", filter=Q(outcome="error")),
            tokens_in=Coalesce(Sum("tokens_in"), 0),
            tokens_out=Coalesce(Sum("tokens_out"), 0),
            cost=Sum("cost"),
        )
        .order_by("-cost", field)
    )


_USAGE_BY_ROLE_SQL = """
    SELECT role, COUNT(*), COUNT(*) FILTER (WHERE outcome = 'error'),
           COALESCE(SUM(tokens_in), 0), COALESCE(SUM(tokens_out), 0), COALESCE(SUM(cost), 0)
    FROM routing_usage,
         jsonb_array_elements_text(CASE WHEN jsonb_array_length(roles) = 0 THEN '["(no role)"]'::jsonb
                                        ELSE roles END) AS role
    WHERE created_at >= %s
    GROUP BY role
    ORDER BY 6 DESC, role
"""


def _usage_by_role(start: dt.datetime) -> list[dict[str, Any]]:
    """A call counts once for each role its user had at the time (roles are stored with the usage row)."""
    with connection.cursor() as cursor:
        cursor.execute(_USAGE_BY_ROLE_SQL, [start])
        names = ("role", "calls", "errors", "tokens_in", "tokens_out", "cost")
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def usage_access_check(*, user: UserLike) -> None:
    if not user.has_perm(VIEW_USAGE_PERMISSION):
        raise PermissionDenied


def usage_report(*, user: UserLike, days: int = 30) -> UsageReport:
    usage_access_check(user=user)
    since = timezone.localdate() - dt.timedelta(days=days - 1)
    start = timezone.make_aware(dt.datetime.combine(since, dt.time.min))
    usage = Usage.objects.filter(created_at__gte=start)
    totals = usage.aggregate(
        calls=Count("id"),
        errors=Count("id", filter=Q(outcome="error")),
        tokens_in=Coalesce(Sum("tokens_in"), 0),
        tokens_out=Coalesce(Sum("tokens_out"), 0),
        cost=Sum("cost"),
    )
    per_day = {
        row["day"]: row
        for row in usage.annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(calls=Count("id"), errors=Count("id", filter=Q(outcome="error")), cost=Sum("cost"))
        .order_by("day")
    }
    by_day = []
    for offset in range(days):
        day = since + dt.timedelta(days=offset)
        day_row: dict[str, Any] = dict(per_day.get(day, {}))
        by_day.append(
            {
                "day": day,
                "calls": day_row.get("calls", 0),
                "errors": day_row.get("errors", 0),
                "cost": day_row.get("cost") or Decimal(0),
            }
        )
    by_role = _usage_by_role(start)
    return UsageReport(
        since=since,
        days=days,
        totals=totals,
        by_day=by_day,
        by_user=_grouped(usage, "username"),
        by_role=by_role,
        by_model=_grouped(usage, "model_name"),
    )


def budgets_enabled() -> list[Budget]:
    return list(Budget.objects.filter(enabled=True).select_related("role", "user"))


def budgets_for_management(*, user: UserLike) -> QuerySet[Budget]:
    """Every budget, enabled or not, for whoever may view budgets (403 otherwise)."""
    if not user.has_perm("routing.view_budget"):
        raise PermissionDenied("You may not see budgets.")
    return Budget.objects.select_related("role", "user").order_by("role__name", "user__username", "period", "pk")


def catalog_list(*, user: UserLike) -> QuerySet[CatalogModel]:
    if not user.has_perm(VIEW_CATALOG_PERMISSION):
        raise PermissionDenied
    return CatalogModel.objects.order_by("tier", "order", "id")


class _Median(Aggregate):  # PostgreSQL's ordered-set aggregate; Django has no median
    function = "percentile_cont"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


@dataclass(frozen=True)
class ModelHealth:
    calls: int
    errors: int
    median_ms: float | None
    last_error_at: dt.datetime | None
    last_error_class: str


def model_health(*, keys: list[str], hours: int = 24) -> dict[str, ModelHealth]:
    """Recent calls per catalog model, from the usage ledger: how many, how many failed, the median duration of
    the successful ones and the latest failure (its error class only: messages may quote a provider's reply)."""
    since = timezone.now() - dt.timedelta(hours=hours)
    rows = Usage.objects.filter(model_key__in=keys, created_at__gte=since)
    counts = {
        row["model_key"]: row
        for row in rows.values("model_key").annotate(
            calls=Count("id"),
            errors=Count("id", filter=Q(outcome="error")),
            last_error_at=Max("created_at", filter=Q(outcome="error")),
        )  # fmt: skip
    }
    medians = dict(
        rows.filter(outcome="success")
        .values("model_key")
        .annotate(median=_Median("total_ms"))
        .values_list("model_key", "median")
    )
    health = {}
    for key, row in counts.items():
        last_class = ""
        if row["last_error_at"] is not None:
            last_class = (
                rows.filter(model_key=key, outcome="error")
                .order_by("-created_at")
                .values_list("error_class", flat=True)
            ).first() or ""
        health[key] = ModelHealth(calls=row["calls"], errors=row["errors"], median_ms=medians.get(key),
                                  last_error_at=row["last_error_at"], last_error_class=last_class)  # fmt: skip
    return health
