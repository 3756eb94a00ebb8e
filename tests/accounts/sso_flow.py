"""Drive the real authorization-code flow: the Django test client is the browser at the portal, a requests
session the same browser at the test OpenID provider (its login form, its authorize endpoint)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from django.test import Client

from tests.oidc_provider.fixture import OpenIDProvider

CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def provider_callback_url(start: Any, provider: OpenIDProvider, username: str, password: str) -> str:
    """From the portal's redirect to the provider, sign in there and return where the provider sends us back."""
    assert start.status_code == 302, start
    browser = requests.Session()
    authorize = browser.get(start["Location"], allow_redirects=False, timeout=30)
    assert authorize.status_code == 302, authorize.text[:500]
    login_url = urljoin(provider.url, authorize.headers["Location"])
    form = browser.get(login_url, timeout=30)
    token = CSRF_FIELD.search(form.text)
    assert token, form.text[:500]
    next_value = dict(part.split("=", 1) for part in urlsplit(login_url).query.split("&"))["next"]
    from urllib.parse import unquote

    posted = browser.post(
        login_url,
        data={"username": username, "password": password, "csrfmiddlewaretoken": token.group(1),
              "next": unquote(next_value)},
        allow_redirects=False, timeout=30,
    )  # fmt: skip
    assert posted.status_code == 302, posted.text[:500]
    back = browser.get(urljoin(provider.url, posted.headers["Location"]), allow_redirects=False, timeout=30)
    assert back.status_code == 302, back.text[:500]
    return str(back.headers["Location"])


def sso_sign_in(client: Client, provider: OpenIDProvider, username: str, password: str = "provider-pass") -> Any:
    """The whole sign-in; returns the portal's answer to the provider's redirect back."""
    callback = provider_callback_url(client.get("/sso/start/"), provider, username, password)
    parts = urlsplit(callback)
    assert parts.netloc == "testserver", callback
    return client.get(f"{parts.path}?{parts.query}")
