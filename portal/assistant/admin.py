from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from guardian.admin import GuardedModelAdmin
from guardian.shortcuts import get_group_perms, get_user_perms

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

    # Who may use a profile is granted on guardian's "Object permissions" screens: audited here, with
    # the permissions before and after, since guardian itself records nothing.
    def obj_perms_manage_user_view(self, request: HttpRequest, object_pk: Any, user_id: Any) -> HttpResponse:
        grantee = User.objects.filter(pk=user_id).first()
        return self._audited_grant(request, object_pk, grantee, get_user_perms, "user", user_id,
                                   super().obj_perms_manage_user_view)  # fmt: skip

    def obj_perms_manage_group_view(self, request: HttpRequest, object_pk: Any, group_id: Any) -> HttpResponse:
        grantee = Group.objects.filter(pk=group_id).first()
        return self._audited_grant(request, object_pk, grantee, get_group_perms, "role", group_id,
                                   super().obj_perms_manage_group_view)  # fmt: skip

    def _audited_grant(
        self,
        request: HttpRequest,
        object_pk: Any,
        grantee: User | Group | None,
        perms_of: Callable[[Any, Any], Any],
        kind: str,
        grantee_id: Any,
        view: Callable[[HttpRequest, Any, Any], HttpResponse],
    ) -> HttpResponse:
        profile = AssistantProfile.objects.filter(pk=object_pk).first()
        if request.method != "POST" or profile is None or grantee is None:
            return view(request, object_pk, grantee_id)
        with transaction.atomic():
            before = sorted(perms_of(grantee, profile))
            response = view(request, object_pk, grantee_id)
            after = sorted(perms_of(grantee, profile))
            if after != before:
                name = grantee.get_username() if isinstance(grantee, User) else grantee.name
                audit(
                    actor=request.user,
                    action="assistant.profile_access_changed",
                    target=profile,
                    request=request,
                    details={"name": profile.name, kind: name, "before": before, "after": after},
                )
        return response
