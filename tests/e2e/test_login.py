from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.e2e.conftest import open_menu_link, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_user_signs_in_sees_the_shell_and_signs_out(page: Any) -> None:
    UserFactory.create(username="alice", first_name="Alice", last_name="Admin", roles=["Administrator"])
    sign_in(page, "alice", DEFAULT_PASSWORD)
    expect(page.get_by_role("heading", name="Welcome, Alice Admin")).to_be_visible()
    open_menu_link(page, "Users")  # under the Manage menu
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_staff_do_not_see_the_administrator_links(page: Any) -> None:
    UserFactory.create(username="sam", first_name="Sam", last_name="Staff", roles=["Staff"])
    sign_in(page, "sam", DEFAULT_PASSWORD)
    expect(page.get_by_role("heading", name="Welcome, Sam Staff")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Users")).to_have_count(0)


def test_a_wrong_password_shows_an_error(page: Any) -> None:
    UserFactory.create(username="sam", roles=["Staff"])
    sign_in(page, "sam", "not the password")
    expect(page.get_by_role("alert")).to_contain_text("correct username and password")


def test_repeated_failures_lock_the_account(page: Any, settings: Any) -> None:
    UserFactory.create(username="sam", roles=["Staff"])
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(page, "sam", "wrong")
    sign_in(page, "sam", DEFAULT_PASSWORD)
    expect(page.get_by_role("heading", name="Too many failed sign-ins")).to_be_visible()


def test_pages_load_no_inline_script_and_no_third_party_resources(page: Any, live_server: Any) -> None:
    UserFactory.create(username="alice", roles=["Administrator"])
    requested: list[str] = []
    violations: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    sign_in(page, "alice", DEFAULT_PASSWORD)
    page.goto("/accounts/users/")
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    assert all(url.startswith(live_server.url) for url in requested), requested
    assert not violations
    assert page.evaluate("typeof htmx") == "object", "htmx is served by the portal itself"
