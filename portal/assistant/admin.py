from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import transaction
from django.http import HttpRequest
from guardian.admin import GuardedModelAdmin

from audit.services import audit
from portal.assistant.models import AssistantProfile


@admin.register(AssistantProfile)
class AssistantProfileAdmin(GuardedModelAdmin):
    """Profiles are edited here; "Object permissions" grants `use_assistantprofile` to roles or users."""

    list_display = ("name", "task_type", "temperature", "max_tokens", "is_active", "updated_at")
    list_filter = ("is_active", "task_type")
    search_fields = ("name", "description", "instructions")
    filter_horizontal = ("knowledge_bases",)
    fields = (
        "name", "description", "instructions", "knowledge_bases", "task_type", "temperature", "max_tokens",
        "passages", "is_active",
    )  # fmt: skip

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        with transaction.atomic():
            super().save_related(request, form, formsets, change)
            profile = form.instance
            audit(
                actor=request.user,
                action="assistant.profile_changed" if change else "assistant.profile_created",
                target=profile,
                request=request,
                details={
                    "name": profile.name,
                    "changed": sorted(form.changed_data),
                    "task_type": profile.task_type,
                    "knowledge_base_ids": sorted(profile.knowledge_bases.values_list("pk", flat=True)),
                },
            )

    def delete_model(self, request: HttpRequest, obj: AssistantProfile) -> None:
        with transaction.atomic():
            audit(actor=request.user, action="assistant.profile_deleted", target=obj, request=request,
                  details={"name": obj.name})  # fmt: skip
            super().delete_model(request, obj)
