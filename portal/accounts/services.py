"""Creating and changing user accounts. Every change is audited in the same transaction.

Site-admin access follows the Administrator role: `is_staff` is set and cleared with it here (on the
Users page and on the site admin's user screen alike), superusers keep it. Only a superuser may change
a superuser's account, so an Administrator cannot take one over (a new password, say).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import Group, User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest

from audit.services import audit
from governance.roles import ADMINISTRATOR
from portal.accounts.errors import SsoRefused
from portal.accounts.models import SsoIdentity

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


# ---- single sign-on ---------------------------------------------------------------------------------
SSO_PROFILE_CLAIMS = (("email", "email"), ("first_name", "given_name"), ("last_name", "family_name"))


def _sso_username(claims: dict[str, Any]) -> str:
    from django.conf import settings

    username = str(claims.get(settings.SSO_USERNAME_CLAIM) or "").strip()
    if not username and claims.get("email"):
        username = str(claims["email"]).split("@", 1)[0]
    return username[:150]


def _sso_find_or_create(*, issuer: str, subject: str, claims: dict[str, Any]) -> tuple[User, SsoIdentity]:
    from django.conf import settings

    identity = SsoIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
    if identity is not None:
        return identity.user, identity
    username = _sso_username(claims)
    if not username:
        raise SsoRefused("no_username")
    existing = User.objects.filter(username__iexact=username).first()
    if existing is not None:
        if not settings.SSO_LINK_EXISTING_USERS or existing.is_superuser or existing.sso_identities.exists():
            raise SsoRefused("username_taken", username=username)
        identity = SsoIdentity.objects.create(user=existing, issuer=issuer, subject=subject)
        audit(actor=None, actor_username="system", action="user.sso_linked", target=existing,
              details={"issuer": issuer, "subject": subject})  # fmt: skip
        return existing, identity
    if not settings.SSO_CREATE_USERS:
        raise SsoRefused("no_account")
    user = User(username=username)
    user.set_unusable_password()  # signs in at the provider only
    try:
        user.full_clean(exclude=["password"])
    except ValidationError:
        raise SsoRefused("bad_username") from None
    user.save()
    identity = SsoIdentity.objects.create(user=user, issuer=issuer, subject=subject)
    details = {"username": user.username, "roles": [], "via": "sso", "issuer": issuer, "subject": subject}
    audit(actor=None, actor_username="system", action="user.created", target=user, details=details)
    return user, identity


@transaction.atomic
def sso_user_sign_in(*, issuer: str, subject: str, claims: dict[str, Any], role_names: Iterable[str]) -> User:
    """The portal user of a verified provider account: found by (issuer, subject), or made just in time.

    Profile fields follow the claims, and the roles become exactly `role_names` (mapped from the roles claim):
    a group removed at the provider removes its role at the next sign-in. Each change is audited.
    """
    from django.conf import settings
    from django.utils import timezone

    user, identity = _sso_find_or_create(issuer=issuer, subject=subject, claims=claims)
    changed = []
    for field, claim in SSO_PROFILE_CLAIMS:
        value = claims.get(claim)
        if isinstance(value, str) and value and getattr(user, field) != value[:150]:
            setattr(user, field, value[:150])
            changed.append(field)
    if changed:
        user.save(update_fields=changed)
        audit(actor=None, actor_username="system", action="user.updated", target=user,
              details={"fields": changed, "changes": {}, "via": "sso"})  # fmt: skip
    groups = list(Group.objects.filter(name__in=set(role_names), role__isnull=False))  # the check names unknown ones
    new_roles = sorted(group.name for group in groups)
    old_roles = sorted(user.groups.filter(role__isnull=False).values_list("name", flat=True))
    if new_roles != old_roles:
        user.groups.set(groups)
        audit(
            actor=None,
            actor_username="system",
            action="user.roles_changed",
            target=user,
            details={
                "before": old_roles,
                "after": new_roles,
                "added": sorted(set(new_roles) - set(old_roles)),
                "removed": sorted(set(old_roles) - set(new_roles)),
                "via": "sso",
                "claim": settings.SSO_ROLES_CLAIM,
            },
        )
    identity.last_sign_in_at = timezone.now()
    identity.save(update_fields=["last_sign_in_at"])
    user_site_access_sync(actor=None, user=user)
    return user


@transaction.atomic
def sso_refusal_record(*, refused: SsoRefused, request: HttpRequest | None) -> None:
    from django.conf import settings

    audit(actor=None, actor_username="sso", action="auth.sso_refused", outcome="failure", request=request,
          details={"reason": refused.reason, "issuer": settings.OIDC_OP_ISSUER})  # fmt: skip
