"""Admin screens: the catalog, the task-type map and budgets are edited here; usage is read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models, transaction
from django.http import HttpRequest

from audit.services import audit
from portal.routing.models import Budget, CatalogModel, TaskTier, Usage


class AuditedAdmin(admin.ModelAdmin):
    """Every change made on these screens is written to the audit trail in the same transaction."""

    audit_action_prefix = "routing"

    def _audit(self, request: HttpRequest, obj: models.Model, verb: str, details: dict[str, Any]) -> None:
        audit(
            actor=request.user,
            action=f"{self.audit_action_prefix}.{obj._meta.model_name}_{verb}",
            target=obj,
            details={"object": str(obj), **details},
            request=request,
        )

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            self._audit(request, obj, "changed" if change else "created", {"fields": sorted(form.changed_data)})

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic():
            self._audit(request, obj, "deleted", {})
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        with transaction.atomic():
            for obj in queryset:
                self._audit(request, obj, "deleted", {})
            super().delete_queryset(request, queryset)


@admin.register(CatalogModel)
class CatalogModelAdmin(AuditedAdmin):
    list_display = (
        "display_name", "litellm_model", "tier", "enabled", "order", "zero_data_retention", "region",
        "api_key_env", "timeout_seconds",
    )  # fmt: skip
    list_filter = ("tier", "enabled", "zero_data_retention", "region")
    list_editable = ("enabled", "order")
    search_fields = ("display_name", "litellm_model")
    fieldsets = (
        (None, {"fields": ("display_name", "litellm_model", "api_base", "api_key_env", "tier", "enabled", "order")}),
        ("What a governance officer cares about", {"fields": ("zero_data_retention", "region")}),
        ("Prices and limits", {"fields": ("input_price_per_million", "output_price_per_million", "timeout_seconds")}),
    )


@admin.register(TaskTier)
class TaskTierAdmin(AuditedAdmin):
    list_display = ("task_type", "tier")
    list_editable = ("tier",)


@admin.register(Budget)
class BudgetAdmin(AuditedAdmin):
    list_display = ("__str__", "role", "user", "period", "limit", "action", "enabled")
    list_filter = ("period", "action", "enabled")
    autocomplete_fields = ("user",)


@admin.register(Usage)
class UsageAdmin(admin.ModelAdmin):
    list_display = (
        "created_at", "username", "model_name", "outcome", "error_class", "tokens_in", "tokens_out", "cost",
        "first_token_ms", "total_ms",
    )  # fmt: skip
    list_filter = ("outcome", "provider", "tier", "task_type")
    search_fields = ("username", "model_name")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
