"""Creating and changing user accounts. Every change is audited in the same transaction.

Site-admin access follows the Administrator role: `is_staff` is set and cleared with it here (on the
Users page and on the site admin's user screen alike), superusers keep it. Only a superuser may change
a superuser's account, so an Administrator cannot take one over (a new password, say).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import Group, User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from audit.services import audit
from governance.roles import ADMINISTRATOR

ERROR_SELF_LOCKOUT = "You cannot remove your own Administrator role or deactivate your own account."
ERROR_UNKNOWN_ROLE = "Unknown role: {name}"
ERROR_SUPERUSER_ONLY = "Only a superuser may change a superuser's account."
# Recorded by value in "user.updated"; the others (names, e-mail) are personal: only named.
VALUE_FIELDS = frozenset({"is_active"})


def _require_may_change(actor: User | None, user: User) -> None:
    if user.is_superuser and actor is not None and not actor.is_superuser:
        raise PermissionDenied(ERROR_SUPERUSER_ONLY)


def site_access_expected(user: User) -> bool:
    """Whether `user` should have the site admin (is_staff): superusers, and holders of the Administrator role."""
    return user.is_superuser or user.groups.filter(name=ADMINISTRATOR).exists()


@transaction.atomic
def user_site_access_sync(*, actor: User | None, user: User) -> bool:
    """Set or clear `is_staff` to follow the Administrator role; True if it changed (and was audited)."""
    wanted = site_access_expected(user)
    if user.is_staff == wanted:
        return False
    user.is_staff = wanted
    user.save(update_fields=["is_staff"])
    audit(
        actor=actor,
        actor_username="" if actor else "system",
        action="user.site_access_changed",
        target=user,
        details={"before": {"is_staff": not wanted}, "after": {"is_staff": wanted}},
    )
    return True


def _roles_by_name(role_names: Iterable[str]) -> list[Group]:
    names = sorted(set(role_names))
    groups = list(Group.objects.filter(name__in=names, role__isnull=False))
    found = {group.name for group in groups}
    for name in names:
        if name not in found:
            raise ValidationError(ERROR_UNKNOWN_ROLE.format(name=name))
    return groups


@transaction.atomic
def user_create(
    *,
    actor: User,
    username: str,
    password: str,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    role_names: Iterable[str] = (),
) -> User:
    user = User(username=username, email=email, first_name=first_name, last_name=last_name)
    validate_password(password, user)
    user.set_password(password)
    user.full_clean()
    user.save()
    groups = _roles_by_name(role_names)
    user.groups.set(groups)
    audit(
        actor=actor,
        action="user.created",
        target=user,
        details={"username": user.username, "roles": sorted(group.name for group in groups)},
    )
    user_site_access_sync(actor=actor, user=user)
    return user


@transaction.atomic
def user_update(
    *,
    actor: User,
    user: User,
    email: str,
    first_name: str,
    last_name: str,
    is_active: bool,
    role_names: Iterable[str],
) -> User:
    _require_may_change(actor, user)
    groups = _roles_by_name(role_names)
    new_roles = sorted(group.name for group in groups)
    if user.pk == actor.pk and (not is_active or ADMINISTRATOR not in new_roles):
        raise ValidationError(ERROR_SELF_LOCKOUT)
    old_roles = sorted(user.groups.values_list("name", flat=True))
    changed: list[str] = []
    changes: dict[str, list[object]] = {}
    for field, value in (
        ("email", email),
        ("first_name", first_name),
        ("last_name", last_name),
        ("is_active", is_active),
    ):
        if getattr(user, field) != value:
            changed.append(field)
            if field in VALUE_FIELDS:
                changes[field] = [getattr(user, field), value]
            setattr(user, field, value)
    user.full_clean()
    user.save()
    if changed:
        audit(actor=actor, action="user.updated", target=user, details={"fields": changed, "changes": changes})
    if old_roles != new_roles:
        user.groups.set(groups)
        audit(
            actor=actor,
            action="user.roles_changed",
            target=user,
            details={
                "before": old_roles,
                "after": new_roles,
                "added": sorted(set(new_roles) - set(old_roles)),
                "removed": sorted(set(old_roles) - set(new_roles)),
            },
        )
    # also when the roles stay: an account from before site access followed the role gets it right
    user_site_access_sync(actor=actor, user=user)
    return user


@transaction.atomic
def user_set_password(*, actor: User, user: User, password: str) -> None:
    _require_may_change(actor, user)
    validate_password(password, user)
    user.set_password(password)
    user.save(update_fields=["password"])
    audit(actor=actor, action="user.password_set", target=user)
