"""Keeps the client's redirect addresses equal to the state file, and tampers with ID tokens when asked.

`tamper` in the state file (cleared by the test) changes the next token responses' ID token:
- "bad-signature": the same claims and key id, signed with another RSA key;
- "wrong-audience": signed with the provider's real key, for another client;
- "expired": signed with the real key, expired ten minutes ago;
- "replay": the ID token of the previous sign-in again (its nonce belongs to that sign-in).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.http import HttpRequest, HttpResponse
from oidc_provider.models import Client, RSAKey

from tests.oidc_provider import state
from tests.oidc_provider.settings import DATA_DIR

LAST_TOKEN = "last_id_token.txt"


def _sync_client(current: dict[str, Any]) -> None:
    wanted = "\n".join(current.get("redirect_uris", []))
    wanted_logout = "\n".join(current.get("post_logout_redirect_uris", []))
    Client.objects.filter(client_id=current.get("client_id", "portal")).exclude(
        _redirect_uris=wanted, _post_logout_redirect_uris=wanted_logout
    ).update(_redirect_uris=wanted, _post_logout_redirect_uris=wanted_logout)


def _tampered(id_token: str, how: str) -> str:
    header = jwt.get_unverified_header(id_token)
    claims = jwt.decode(id_token, options={"verify_signature": False})
    stored = next(key for key in RSAKey.objects.all() if key.kid == header["kid"])
    real_key = serialization.load_pem_private_key(stored.key.encode(), password=None)
    assert isinstance(real_key, rsa.RSAPrivateKey)  # the provider's keys are RSA (creatersakey)
    headers = {"kid": header["kid"]}
    if how == "bad-signature":
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return jwt.encode(claims, other, algorithm="RS256", headers=headers)
    if how == "wrong-audience":
        return jwt.encode({**claims, "aud": "another-client"}, real_key, algorithm="RS256", headers=headers)
    if how == "expired":
        now = int(time.time())
        return jwt.encode({**claims, "iat": now - 1200, "exp": now - 600}, real_key, algorithm="RS256",
                          headers=headers)  # fmt: skip
    if how == "replay":
        previous = DATA_DIR / LAST_TOKEN
        return previous.read_text() if previous.exists() else id_token
    return id_token


class StateMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        current = state.read()
        _sync_client(current)
        response = self.get_response(request)
        if request.path.rstrip("/").endswith("/openid/token") and response.status_code == 200:
            body = json.loads(response.content)
            id_token = body.get("id_token")
            if id_token:
                how = current.get("tamper") or ""
                body["id_token"] = _tampered(id_token, how) if how else id_token
                if how != "replay":
                    (DATA_DIR / LAST_TOKEN).write_text(id_token)
                response.content = json.dumps(body).encode()
                response["Content-Length"] = str(len(response.content))
        return response
