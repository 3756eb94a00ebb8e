"""Password sign-in: Django's ModelBackend, refused for everyone but the break-glass accounts under SSO-only.

With `SSO_PASSWORD_LOGIN=0` only the accounts named in `SSO_BREAK_GLASS_USERS` that hold the Administrator
role (or are superusers) may sign in with a password, on the sign-in page and on the site admin's alike;
everyone else signs in through the identity provider.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
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
