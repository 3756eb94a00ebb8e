from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import ManyToManyField
from django.http import HttpRequest

from audit.admin import AuditedGuardedModelAdmin
from portal.assistant.models import AssistantProfile


@admin.register(AssistantProfile)
class AssistantProfileAdmin(AuditedGuardedModelAdmin):
    """Profiles are edited here; "Object permissions" grants `use_assistantprofile` to roles or users.

    Every save, delete and grant is audited by the mixin ("assistant.profile_created", "_changed",
    "_deleted", "_access_changed"); the instructions and description are free text, so only named.
    """

    audit_subject = "assistant.profile"
    audit_object_repr = True  # the profile's name: a label an administrator chose, never personal
    list_display = ("name", "task_type", "temperature", "max_tokens", "sensitive", "is_active", "updated_at")
    list_filter = ("is_active", "sensitive", "task_type")
    search_fields = ("name", "description", "instructions")
    filter_horizontal = ("knowledge_bases",)
    fields = (
        "name", "description", "instructions", "knowledge_bases", "all_readable_knowledge", "task_type",
        "temperature", "max_tokens", "passages", "sensitive", "is_active",
    )  # fmt: skip

    def formfield_for_manytomany(
        self, db_field: ManyToManyField[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> forms.ModelMultipleChoiceField[Any] | None:
        if db_field.name == "knowledge_bases":
            from knowledge.selectors import listed_knowledge_bases

            # a conversation's attached files belong to that conversation alone, never to a profile
            kwargs["queryset"] = listed_knowledge_bases()
        return super().formfield_for_manytomany(db_field, request, **kwargs)
