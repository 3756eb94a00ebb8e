"""The 403, 404 and 500 pages: the portal's look and a way back, whatever failed."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, RequestFactory
from django.views.defaults import server_error

pytestmark = pytest.mark.django_db


def test_a_404_has_the_portals_layout_and_the_users_navigation(client: Client, sam: Any) -> None:
    client.force_login(sam)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "This page does not exist" in html
    assert 'aria-label="Main"' in html
    assert "Assistant</a>" in html  # Sam's own menu
    assert 'href="/">Go to the home page' in html
    assert "/static/css/portal" in html


def test_a_403_says_why_and_leads_home(client: Client, sam: Any) -> None:
    client.force_login(sam)
    response = client.get("/audit/")
    assert response.status_code == 403
    html = response.content.decode()
    assert "You may not open this page" in html
    assert "Reviewing the audit trail is for auditors and administrators." in html
    assert "Go to the home page" in html
    assert "Sign in</a>" not in html  # already signed in


def test_the_500_page_renders_without_a_request_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """Django renders 500.html with no context processors; nothing in it may need them (the navigation reads
    the database, which may be what failed)."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database down")

    monkeypatch.setattr("portal.core.context_processors.navigation_for", broken)
    response = server_error(RequestFactory().get("/assistant/"))
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong on the server" in html
    assert "/static/css/portal" in html
    assert 'href="/">Go to the home page' in html
    assert "Sign out" not in html
