"""Audit of sign-ins. Django only reports these through signals, so this is where they are recorded."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.http import HttpRequest

from audit.models import Outcome
from audit.privacy import text_fingerprint
from audit.services import audit

MAX_ATTEMPTED_USERNAME = 150
UNKNOWN_USERNAME = "(no such account)"


SSO_BACKEND = "portal.accounts.sso.PortalOIDCBackend"


def _on_login(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    method = "sso" if getattr(user, "backend", "") == SSO_BACKEND else "password"
    audit(actor=user, action="auth.login", target=user, request=request, details={"method": method})


def _on_logout(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    if user is not None:
        audit(actor=user, action="auth.logout", target=user, request=request)


def _on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # Only the username is kept: Django already masks the password in `credentials`, and we drop it anyway.
    # And only a username that names an account: what else people type there is often their password (or an
    # e-mail), which the append-only trail could never forget; it keeps that text's fingerprint instead.
    attempted = str(credentials.get("username", ""))[:MAX_ATTEMPTED_USERNAME]
    if attempted and get_user_model().objects.filter(username=attempted).exists():
        named, details = attempted, {"username": attempted}
    else:
        named, details = UNKNOWN_USERNAME, {"username": UNKNOWN_USERNAME, **text_fingerprint(attempted, name="typed")}
    audit(
        actor=None,
        actor_username=named,
        action="auth.login_failed",
        outcome=Outcome.FAILURE,
        details=details,
        request=request,
    )


def connect() -> None:
    user_logged_in.connect(_on_login, dispatch_uid="accounts.audit_login")
    user_logged_out.connect(_on_logout, dispatch_uid="accounts.audit_logout")
    user_login_failed.connect(_on_login_failed, dispatch_uid="accounts.audit_login_failed")
