"""`openid_provider`: the test OpenID provider running in a second process; `sso`: the portal pointed at it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
NETGUARD_DIR = REPO_ROOT / "tests" / "netguard"
START_SECONDS = 60
CLIENT_ID, CLIENT_SECRET = "portal", "portal-secret"


class OpenIDProvider:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.state_file = folder / "state.json"
        self.log = folder / "provider.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.state: dict[str, Any] = {}
        self.reset()

    # ---- what the test controls
    def reset(self) -> None:
        self.state = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "users": {}, "tamper": "",
                      "redirect_uris": [], "post_logout_redirect_uris": [], "groups_claim": "groups"}  # fmt: skip
        self._write()

    def _write(self) -> None:
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.state), encoding="utf-8")
        os.replace(temporary, self.state_file)

    def user(self, username: str, password: str = "provider-pass", **claims: Any) -> None:
        """Add or change a person at the provider (groups=[...], email=..., given_name=..., family_name=...)."""
        person = dict(self.state["users"].get(username, {}))
        person.update(password=password, **claims)
        self.state["users"][username] = person
        self._write()

    def tamper(self, how: str) -> None:
        self.state["tamper"] = how
        self._write()

    def allow_portal(self, portal_url: str) -> None:
        """Register the portal at `portal_url` (http://host:port) as a redirect target of the client."""
        callback, after_logout = f"{portal_url}/sso/callback/", f"{portal_url}/login/"
        for key, value in (("redirect_uris", callback), ("post_logout_redirect_uris", after_logout)):
            if value not in self.state[key]:
                self.state[key].append(value)
        self._write()

    @property
    def issuer(self) -> str:
        return f"{self.url}/openid"

    def portal_settings(self) -> dict[str, Any]:
        return {
            "OIDC_RP_CLIENT_ID": CLIENT_ID,
            "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_OP_ISSUER": self.issuer,
            "OIDC_OP_AUTHORIZATION_ENDPOINT": f"{self.issuer}/authorize",
            "OIDC_OP_TOKEN_ENDPOINT": f"{self.issuer}/token",
            "OIDC_OP_USER_ENDPOINT": f"{self.issuer}/userinfo",
            "OIDC_OP_JWKS_ENDPOINT": f"{self.issuer}/jwks",
            "OIDC_OP_LOGOUT_ENDPOINT": f"{self.issuer}/end-session",
        }

    # ---- the process
    def start(self) -> OpenIDProvider:
        env = dict(os.environ)
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(NETGUARD_DIR), str(REPO_ROOT), env.get("PYTHONPATH")]))
        env["OIDC_TEST_STATE"] = str(self.state_file)
        if self.url:  # a restart keeps its port, so the portal's settings stay right
            env["OIDC_TEST_PORT"] = self.url.rsplit(":", 1)[1]
        log = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.oidc_provider.serve"], cwd=REPO_ROOT, env=env,
            stdout=subprocess.PIPE, stderr=log,
        )  # fmt: skip
        assert self.process.stdout is not None
        deadline = time.monotonic() + START_SECONDS
        line = b""
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line.startswith(b"listening on "):
                self.url = line.decode().split("listening on ", 1)[1].strip()
                return self
            if self.process.poll() is not None:
                break
        self.stop()
        pytest.fail("the test OpenID provider did not start:\n" + self.log.read_text(errors="replace")[-3000:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@pytest.fixture(scope="session")
def _openid_provider_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenIDProvider]:
    provider = OpenIDProvider(tmp_path_factory.mktemp("openid-provider")).start()
    yield provider
    provider.stop()


@pytest.fixture
def openid_provider(_openid_provider_process: OpenIDProvider) -> Iterator[OpenIDProvider]:
    provider = _openid_provider_process
    if not provider.running():  # a test stopped it to see the provider down
        provider.start()
    provider.reset()
    yield provider
    provider.reset()


@pytest.fixture
def sso(openid_provider: OpenIDProvider, settings: Any) -> OpenIDProvider:
    """The portal's single sign-on pointed at the test provider (the Django test client's host: testserver)."""
    for name, value in openid_provider.portal_settings().items():
        setattr(settings, name, value)
    openid_provider.allow_portal("http://testserver")
    return openid_provider
