"""System checks of the single sign-on settings: a half-done configuration fails at start, not at sign-in."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from governance.roles import ROLE_ORDER

SSO_SETTINGS = (
    "OIDC_OP_ISSUER",
    "OIDC_OP_AUTHORIZATION_ENDPOINT",
    "OIDC_OP_TOKEN_ENDPOINT",
    "OIDC_OP_JWKS_ENDPOINT",
)


@register()
def sso_settings_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    if settings.OIDC_RP_CLIENT_ID:
        missing = [name for name in SSO_SETTINGS if not getattr(settings, name)]
        if missing:
            problems.append(Error(f"OIDC_RP_CLIENT_ID is set but {', '.join(missing)} is not.", id="accounts.E001"))
    if settings.SSO_ROLE_MAP.strip():
        try:
            mapping = json.loads(settings.SSO_ROLE_MAP)
        except ValueError as error:
            problems.append(Error(f"SSO_ROLE_MAP is not JSON: {error}", id="accounts.E002"))
        else:
            if not isinstance(mapping, dict):
                problems.append(Error("SSO_ROLE_MAP must be a JSON object (claim value: role).", id="accounts.E002"))
            else:
                for value, roles in mapping.items():
                    for role in [roles] if isinstance(roles, str) else roles:
                        if role not in ROLE_ORDER:
                            message = f"SSO_ROLE_MAP maps {value!r} to an unknown role {role!r}."
                            hint = f"Roles: {', '.join(ROLE_ORDER)}"
                            problems.append(Error(message, hint=hint, id="accounts.E003"))
    if not settings.SSO_PASSWORD_LOGIN:
        if not settings.OIDC_RP_CLIENT_ID:
            problems.append(Error("SSO_PASSWORD_LOGIN=0 without single sign-on: nobody but the break-glass "
                                  "accounts could sign in.", id="accounts.E004"))  # fmt: skip
        if not settings.SSO_BREAK_GLASS_USERS:
            problems.append(Warning("SSO_PASSWORD_LOGIN=0 and no SSO_BREAK_GLASS_USERS: if the identity provider "
                                    "is down, nobody can sign in.", id="accounts.W001"))  # fmt: skip
    return problems
