"""Admin screens: the catalog, the task-type map and budgets are edited here (audited); usage is read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.admin import AuditedModelAdmin
from portal.routing.models import Budget, CatalogModel, TaskTier, Usage


@admin.register(CatalogModel)
class CatalogModelAdmin(AuditedModelAdmin):
    # where prompts go is what an auditor asks about: the model string, key variable name and region are
    # configuration, never personal, so they are recorded by value (the API base only as "changed")
    audit_value_fields = ("display_name", "litellm_model", "api_key_env", "region")
    audit_object_repr = True
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
class TaskTierAdmin(AuditedModelAdmin):
    list_display = ("task_type", "tier")
    list_editable = ("tier",)


@admin.register(Budget)
class BudgetAdmin(AuditedModelAdmin):
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
