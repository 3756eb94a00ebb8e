"""Creating and changing user accounts. Every change is audited in the same transaction."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import Group, User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from audit.services import audit
from governance.roles import ADMINISTRATOR

ERROR_SELF_LOCKOUT = "You cannot remove your own Administrator role or deactivate your own account."
ERROR_UNKNOWN_ROLE = "Unknown role: {name}"


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
    groups = _roles_by_name(role_names)
    new_roles = sorted(group.name for group in groups)
    if user.pk == actor.pk and (not is_active or ADMINISTRATOR not in new_roles):
        raise ValidationError(ERROR_SELF_LOCKOUT)
    old_roles = sorted(user.groups.values_list("name", flat=True))
    changes: dict[str, list[object]] = {}
    for field, value in (
        ("email", email),
        ("first_name", first_name),
        ("last_name", last_name),
        ("is_active", is_active),
    ):
        if getattr(user, field) != value:
            changes[field] = [getattr(user, field), value]
            setattr(user, field, value)
    user.full_clean()
    user.save()
    if changes:
        audit(actor=actor, action="user.updated", target=user, details={"changes": changes})
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
    return user


@transaction.atomic
def user_set_password(*, actor: User, user: User, password: str) -> None:
    validate_password(password, user)
    user.set_password(password)
    user.save(update_fields=["password"])
    audit(actor=actor, action="user.password_set", target=user)
