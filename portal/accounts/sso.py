"""Single sign-on with OpenID Connect: mozilla-django-oidc's relying party, stricter about the ID token.

The authorization-code flow (with PKCE), the token exchange, the provider's keys (JWKS) and the user
information come from mozilla-django-oidc. What this module adds:

* the ID token is checked in full with PyJWT: signature against the provider's keys, `aud` (and `azp`) equal to
  our client id, `iss` equal to OIDC_OP_ISSUER, `exp` / `iat` with OIDC_CLOCK_SKEW_SECONDS of leeway, the
  sign-in's own nonce, and that nonce not used before (mozilla-django-oidc skips the audience);
* the user is found by (issuer, subject), never by e-mail, and made just in time; the roles claim
  (SSO_ROLES_CLAIM, mapped by SSO_ROLE_MAP) sets the portal's roles at every sign-in (accounts.services);
* every refusal is audited (`auth.sso_refused`, the reason code, never the token) and shown on a page that
  says why; a provider that does not answer gets a page of its own, and password sign-in of the break-glass
  accounts keeps working (portal.accounts.backends);
* signing out ends the session at the provider too (RP-initiated logout with the ID token as hint).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import SuspiciousOperation
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from governance.roles import ROLE_ORDER
from portal.accounts.errors import SsoRefused, SsoUnavailable
from portal.accounts.models import SsoNonce

logger = logging.getLogger(__name__)

BACKEND_PATH = "portal.accounts.sso.PortalOIDCBackend"
REQUIRED_ENDPOINTS = ("OIDC_OP_AUTHORIZATION_ENDPOINT", "OIDC_OP_TOKEN_ENDPOINT", "OIDC_OP_JWKS_ENDPOINT")
REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "iat"]
_JWT_ERRORS: list[tuple[type[Exception], str]] = [
    (jwt.InvalidSignatureError, "bad_signature"),
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.InvalidAudienceError, "wrong_audience"),
    (jwt.InvalidIssuerError, "wrong_issuer"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidIssuedAtError, "not_yet_valid"),
    (jwt.InvalidAlgorithmError, "wrong_algorithm"),
]


def sso_configured() -> bool:
    """Single sign-on is on when a client id, the issuer and the provider's endpoints are all set."""
    return bool(settings.OIDC_RP_CLIENT_ID and settings.OIDC_OP_ISSUER) and all(
        getattr(settings, name) for name in REQUIRED_ENDPOINTS
    )


def role_map() -> dict[str, list[str]]:
    """Claim value -> portal role names, from SSO_ROLE_MAP (JSON); by default each role maps from its own name."""
    if not settings.SSO_ROLE_MAP.strip():
        return {role: [role] for role in ROLE_ORDER}
    raw = json.loads(settings.SSO_ROLE_MAP)
    if not isinstance(raw, dict):
        raise ValueError("SSO_ROLE_MAP must be a JSON object")
    return {str(value): [raw[value]] if isinstance(raw[value], str) else [str(r) for r in raw[value]] for value in raw}


def claim_values(claims: dict[str, Any], name: str) -> list[str]:
    """The values of a claim that may be a list or one string."""
    value = claims.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(item) for item in value if isinstance(item, str | int)]
    return []


def roles_from_claims(claims: dict[str, Any]) -> list[str]:
    mapping = role_map()
    roles = {role for value in claim_values(claims, settings.SSO_ROLES_CLAIM) for role in mapping.get(value, [])}
    return sorted(roles, key=lambda role: ROLE_ORDER.index(role) if role in ROLE_ORDER else len(ROLE_ORDER))


def _nonce_consume(nonce: str) -> None:
    """Record an accepted nonce; a second token with the same nonce is a replay."""
    digest = hashlib.sha256(nonce.encode()).hexdigest()
    try:
        with transaction.atomic():
            SsoNonce.objects.create(digest=digest)
    except IntegrityError:
        raise SsoRefused("nonce_replayed") from None


class PortalOIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend, used only by the callback view (`portal_sso=True`).

    Listed in AUTHENTICATION_BACKENDS so a session it signed in stays valid; a password sign-in never reaches
    the token exchange (mozilla-django-oidc's own backend would try one for any request with ?code&state).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No ImproperlyConfigured while SSO is off: Django builds every backend at each sign-in.
        self.OIDC_OP_TOKEN_ENDPOINT = settings.OIDC_OP_TOKEN_ENDPOINT
        self.OIDC_OP_USER_ENDPOINT = settings.OIDC_OP_USER_ENDPOINT
        self.OIDC_OP_JWKS_ENDPOINT = settings.OIDC_OP_JWKS_ENDPOINT
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None
        self.UserModel = get_user_model()

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> User | None:
        if not kwargs.pop("portal_sso", False) or request is None or not sso_configured():
            return None
        try:
            user: User | None = super().authenticate(request, **kwargs)
            return user
        except requests.HTTPError as error:
            status = error.response.status_code if error.response is not None else 0
            if 400 <= status < 500:
                raise SsoRefused("code_refused") from None
            raise SsoUnavailable(str(status)) from error
        except requests.RequestException as error:
            raise SsoUnavailable(type(error).__name__) from error

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        """Check an ID token completely; `nonce` (when given) must be this sign-in's and never seen before."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise SsoRefused("malformed") from None
        algorithm = self.OIDC_RP_SIGN_ALGO
        if header.get("alg") != algorithm:
            raise SsoRefused("wrong_algorithm")
        if algorithm.startswith(("RS", "ES", "PS")):
            try:
                key: Any = self.retrieve_matching_jwk(token)
            except (SuspiciousOperation, KeyError, jwt.PyJWKError):
                raise SsoRefused("unknown_key") from None
        else:
            key = self.OIDC_RP_CLIENT_SECRET
        try:
            payload: dict[str, Any] = jwt.decode(
                token, key, algorithms=[algorithm], audience=self.OIDC_RP_CLIENT_ID, issuer=settings.OIDC_OP_ISSUER,
                leeway=settings.OIDC_CLOCK_SKEW_SECONDS, options={"require": REQUIRED_CLAIMS},
            )  # fmt: skip
        except jwt.InvalidTokenError as error:
            reason = next((code for kind, code in _JWT_ERRORS if isinstance(error, kind)), "malformed")
            raise SsoRefused(reason) from None
        audiences = payload["aud"] if isinstance(payload["aud"], list) else [payload["aud"]]
        if len(audiences) > 1 and payload.get("azp") != self.OIDC_RP_CLIENT_ID:
            raise SsoRefused("wrong_audience")
        if "nonce" in kwargs:
            nonce = kwargs["nonce"]
            if not nonce or payload.get("nonce") != nonce:
                raise SsoRefused("nonce_mismatch")
            _nonce_consume(nonce)
        return payload

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        return bool(claims.get("sub"))

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> User:
        from portal.accounts.services import sso_user_sign_in

        user_info = self.get_userinfo(access_token, id_token, payload) if self.OIDC_OP_USER_ENDPOINT else {}
        if user_info and user_info.get("sub") != payload["sub"]:
            raise SsoRefused("subject_mismatch")
        claims = {**payload, **user_info}
        return sso_user_sign_in(
            issuer=str(payload["iss"]), subject=str(payload["sub"]), claims=claims, role_names=roles_from_claims(claims)
        )


def provider_reachable() -> bool:
    """A quick look at the provider's keys before sending the browser there: down, and we say so ourselves."""
    try:
        response = requests.get(settings.OIDC_OP_JWKS_ENDPOINT, timeout=min(settings.OIDC_TIMEOUT, 5))
    except requests.RequestException as error:
        logger.warning("sso: the identity provider does not answer (%s)", type(error).__name__)
        return False
    if response.status_code >= 500:
        logger.warning("sso: the identity provider answers %s", response.status_code)
        return False
    return True


def nonces_prune(*, older_than_hours: int = 24) -> int:
    """Forget accepted nonces once no ID token carrying them can still be valid (the retention run calls this)."""
    from datetime import timedelta

    from django.utils import timezone

    count, _ = SsoNonce.objects.filter(used_at__lt=timezone.now() - timedelta(hours=older_than_hours)).delete()
    return count
