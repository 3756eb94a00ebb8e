from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from portal.assistant.bench.chat_page import CHROMIUM_FLAGS
from tests.assistant.conftest import FAKE_KEY, KEY_VARIABLE
from tests.conftest import chromium_path
from tests.e2e.waits import PAGE_WAIT_MS
from tests.servers import uvicorn

ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """Playwright's sync API keeps an event loop running in the test thread while it lives, so Django takes
    the browser tests' own ORM calls (synchronous and safe: fixtures, assertions, the database flush after
    each test) for calls from async code. Allowed for the browser tests only, from their setup to the end
    of their teardown; the browser (and its loop) lives per module, so every other test runs with the
    check on and it catches sync ORM use in the streaming code."""
    if "/e2e/" not in str(item.fspath):
        return (yield)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        return (yield)
    finally:
        os.environ.pop(ASYNC_UNSAFE, None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.xdist_group("browser"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; `make test` installs Debian's chromium")
        pytest.skip("chromium is not installed (apt-get install chromium, or run `make test`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(PAGE_WAIT_MS)
    opened = context.new_page()
    yield opened
    context.close()


def sign_in(page: Any, username: str, password: str) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def open_menu_link(page: Any, name: str) -> None:
    """Follow a link of the main menu, opening the "Manage" menu (administrators' screens) when it holds it."""
    navigation = page.get_by_role("navigation", name="Main")
    link = navigation.get_by_role("link", name=name, exact=True)
    if not link.is_visible():
        navigation.locator("summary", has_text="Manage").click()
    link.click()


@pytest.fixture
def asgi_server(transactional_db: None, subprocess_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """uvicorn serving the portal on the test database (the live_server fixture is WSGI: no streaming)."""
    env = dict(
        subprocess_env,
        PORTAL_DB_NAME=str(connection.settings_dict["NAME"]),
        PORTAL_DEBUG="1",  # static files straight from the source folders, no collectstatic
        **{KEY_VARIABLE: FAKE_KEY},
    )
    with uvicorn(env, tmp_path / "uvicorn.log") as url:
        yield url


@pytest.fixture
def asgi_page(browser: Any, asgi_server: str) -> Iterator[Any]:
    context = browser.new_context(base_url=asgi_server)
    context.set_default_timeout(PAGE_WAIT_MS)
    yield context.new_page()
    context.close()
