from __future__ import annotations

from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, Q, QuerySet
from django.shortcuts import get_object_or_404

ERROR_MANAGE_USERS = "Managing users is for administrators."


def role_groups() -> QuerySet[Group]:
    return Group.objects.filter(role__isnull=False).select_related("role").order_by("role__position")


def user_list(*, actor: User, search: str = "", role: str = "") -> QuerySet[User]:
    if not actor.has_perm("governance.manage_users"):
        raise PermissionDenied(ERROR_MANAGE_USERS)
    users = User.objects.order_by("username").prefetch_related(
        Prefetch("groups", queryset=Group.objects.order_by("name"))
    )
    if search:
        users = users.filter(
            Q(username__icontains=search)
            | Q(first_name__icontains=search)
            | Q(last_name__icontains=search)
            | Q(email__icontains=search)
        )
    if role:
        users = users.filter(groups__name=role)
    return users


def user_get_for_management(*, actor: User, user_id: int) -> User:
    if not actor.has_perm("governance.manage_users"):
        raise PermissionDenied(ERROR_MANAGE_USERS)
    return get_object_or_404(User, pk=user_id)
