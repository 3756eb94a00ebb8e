"""The roles (groups) of a user, read once per user object.

One question reads its asker's roles many times (the audit events' actor roles, the egress policy, the
routing budgets, the usage row): each read was a query. A user object lives for one request (the
authentication middleware loads it afresh each time), so its roles are read at the first use and kept on it,
as Django keeps a user's permissions (`_perm_cache`). Adding or removing a role through that same object
(`user.groups.add(...)`) forgets what was kept; so does `forget_roles(user)`.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group

_ROLES_ATTRIBUTE = "_portal_roles"


def user_roles(user: Any) -> tuple[tuple[int, str], ...]:
    """(id, name) of each of the user's roles, by name; () for nobody signed in."""
    if user is None or not getattr(user, "is_authenticated", False) or user.pk is None:
        return ()
    kept: tuple[tuple[int, str], ...] | None = getattr(user, _ROLES_ATTRIBUTE, None)
    if kept is None:
        rows = Group.objects.filter(user=user.pk).order_by("name", "pk").values_list("pk", "name")
        kept = tuple((int(pk), str(name)) for pk, name in rows)
        setattr(user, _ROLES_ATTRIBUTE, kept)
    return kept


def user_role_names(user: Any) -> list[str]:
    return [name for _pk, name in user_roles(user)]


def user_role_ids(user: Any) -> list[int]:
    return [pk for pk, _name in user_roles(user)]


def forget_roles(user: Any) -> None:
    if user is not None and getattr(user, _ROLES_ATTRIBUTE, None) is not None:
        setattr(user, _ROLES_ATTRIBUTE, None)


def forget_roles_on_change(sender: Any, instance: Any, action: str, reverse: bool, **kwargs: Any) -> None:
    """m2m_changed of User.groups: the user object whose roles changed forgets the ones it kept."""
    if action in ("post_add", "post_remove", "post_clear") and not reverse:
        forget_roles(instance)
