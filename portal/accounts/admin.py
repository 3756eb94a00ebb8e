"""Django's user and role (group) screens and django-axes' sign-in records, re-registered audited.

Site-admin access (`is_staff`) follows the Administrator role: it is read-only here and set by
`user_site_access_sync` after every save, the same service the Users page uses. Only superusers make
superusers or grant permissions to a single user, and only they may change a superuser's account.
"""

from __future__ import annotations

from typing import Any

from axes.admin import AccessAttemptAdmin, AccessFailureLogAdmin, AccessLogAdmin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.db import router, transaction
from django.http import HttpRequest, HttpResponse

from audit.admin import AuditedModelAdmin
from governance.roles import ADMINISTRATOR
from portal.accounts.services import ERROR_SELF_LOCKOUT, user_site_access_sync

for registered in (User, Group, AccessAttempt, AccessLog, AccessFailureLog):
    if admin.site.is_registered(registered):
        admin.site.unregister(registered)


@admin.register(User)
class PortalUserAdmin(AuditedModelAdmin, UserAdmin):
    audit_object_repr = True  # the username, which the trail names its actors by anyway

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = ["is_staff", "last_login", "date_joined"]
        if not request.user.is_superuser:
            fields += ["is_superuser", "user_permissions"]
        return fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        if obj is not None:  # a legal hold on the person keeps their account (and what cascades from it)
            from portal.retention.selectors import holds_covering

            if holds_covering(user_id=obj.pk):
                return False
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        from portal.retention.selectors import holds_active

        held = holds_active().filter(subject="user").values("subject_id")
        kept = queryset.filter(pk__in=held).count()
        if kept:
            self.message_user(request, f"{kept} account(s) under a legal hold were kept.", level="warning")
        super().delete_queryset(request, queryset.exclude(pk__in=held))

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None or obj.pk != request.user.pk or request.user.is_superuser:
            return form

        class OwnAccountForm(form):  # type: ignore[misc, valid-type]
            """As on the Users page: an Administrator keeps their own role and stays active."""

            def clean(self) -> dict[str, Any]:
                cleaned: dict[str, Any] = super().clean()
                groups = cleaned.get("groups")
                drops_role = groups is not None and not any(group.name == ADMINISTRATOR for group in groups)
                if drops_role or cleaned.get("is_active") is False:
                    raise ValidationError(ERROR_SELF_LOCKOUT)
                return cleaned

        return OwnAccountForm

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        user_site_access_sync(actor=request.user, user=form.instance)  # type: ignore[arg-type]

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        # Django saves the new password outside a transaction; the audit event ("password" changed,
        # never the hash) must commit or roll back with it.
        with transaction.atomic(using=router.db_for_write(self.model)):
            return super().user_change_password(request, id, form_url)


@admin.register(Group)
class PortalGroupAdmin(AuditedModelAdmin, GroupAdmin):
    """Roles and their permissions (as app_label.codename before and after, in the trail).

    The four roles' permissions are set back to governance.roles.ROLE_PERMISSIONS at every `migrate`.
    """

    audit_object_repr = True


@admin.register(AccessAttempt)
class AuditedAccessAttemptAdmin(AuditedModelAdmin, AccessAttemptAdmin):
    """Deleting an attempt lifts a lockout: audited, with the counts (never the username or address)."""


@admin.register(AccessLog)
class AuditedAccessLogAdmin(AuditedModelAdmin, AccessLogAdmin):
    pass


@admin.register(AccessFailureLog)
class AuditedAccessFailureLogAdmin(AuditedModelAdmin, AccessFailureLogAdmin):
    pass
