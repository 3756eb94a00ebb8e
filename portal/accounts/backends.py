"""Password sign-in: Django's ModelBackend, refused for everyone but the break-glass accounts under SSO-only.

With `SSO_PASSWORD_LOGIN=0` only the accounts named in `SSO_BREAK_GLASS_USERS` that hold the Administrator
role (or are superusers) may sign in with a password, on the sign-in page and on the site admin's alike;
everyone else signs in through the identity provider.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission, User
from django.http import HttpRequest

from governance.roles import ADMINISTRATOR

ERROR_PASSWORD_LOGIN_OFF = "Password sign-in is turned off here: sign in with single sign-on."


def password_login_everyone() -> bool:
    return bool(settings.SSO_PASSWORD_LOGIN)


def is_break_glass_name(username: str) -> bool:
    return username.lower() in {name.lower() for name in settings.SSO_BREAK_GLASS_USERS}


def password_login_allowed(username: str) -> bool:
    """Whether `username` may sign in with a password at all (before the password is looked at)."""
    return password_login_everyone() or is_break_glass_name(username)


def _is_administrator(user: User) -> bool:
    return user.is_superuser or user.groups.filter(name=ADMINISTRATOR).exists()


class PasswordBackend(ModelBackend):
    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> User | None:
        if username is None:
            username = kwargs.get(User.USERNAME_FIELD)
        if username is None or password is None:
            return None
        if not password_login_allowed(str(username)):
            return None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None and not password_login_everyone() and not _is_administrator(user):
            return None  # a break-glass name that is no administrator (any more)
        return user

    def get_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        """The user's own permissions and their roles', as ModelBackend has them, in one statement (it reads
        them in two, at every request that checks one), cached on the user object as ModelBackend does."""
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None or user_obj.is_superuser:
            return super().get_all_permissions(user_obj, obj)
        if not hasattr(user_obj, "_perm_cache"):
            own = Permission.objects.filter(user=user_obj).values_list("content_type__app_label", "codename")
            of_roles = Permission.objects.filter(group__user=user_obj).values_list(
                "content_type__app_label", "codename"
            )
            rows = own.order_by().union(of_roles.order_by())
            user_obj._perm_cache = {f"{app_label}.{codename}" for app_label, codename in rows}
        return user_obj._perm_cache  # type: ignore[no-any-return]
