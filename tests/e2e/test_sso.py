"""Single sign-on in a real browser: the portal (live server) and a real OpenID provider on 127.0.0.1, the real
redirects between them, roles from the provider's groups claim at every sign-in."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.oidc_provider.fixture import OpenIDProvider

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sso_live(openid_provider: OpenIDProvider, live_server: Any, settings: Any) -> OpenIDProvider:
    for name, value in openid_provider.portal_settings().items():
        setattr(settings, name, value)
    openid_provider.allow_portal(live_server.url)
    policy = copy.deepcopy(settings.CONTENT_SECURITY_POLICY)  # as settings.py does for OIDC_OP_LOGOUT_ENDPOINT
    policy["DIRECTIVES"]["form-action"].append(openid_provider.url)
    settings.CONTENT_SECURITY_POLICY = policy
    return openid_provider


def sign_in_at_provider(page: Any, username: str, password: str = "provider-pass") -> None:
    page.get_by_role("link", name="Sign in with single sign-on").click()
    expect(page.get_by_role("heading", name="Test identity provider")).to_be_visible()
    page.get_by_label("Provider username").fill(username)
    page.get_by_label("Provider password").fill(password)
    page.get_by_role("button", name="Continue").click()


def test_sso_sign_in_as_staff_then_as_governance_officer_after_the_claim_changes(
    page: Any, sso_live: OpenIDProvider, live_server: Any
) -> None:
    sso_live.user("jane", given_name="Jane", family_name="Doe", email="jane@contoso.test", groups=["Staff"])
    page.goto("/login/")
    sign_in_at_provider(page, "jane")
    expect(page.get_by_role("heading", name="Welcome, Jane Doe")).to_be_visible()
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Customers")).to_be_visible()  # Staff
    expect(nav.get_by_role("link", name="Governance")).to_have_count(0)

    page.get_by_role("button", name="Sign out").click()  # ends the provider's session too, then back here
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.url == f"{live_server.url}/login/"

    sso_live.user("jane", groups=["Governance officer"])  # the provider's group changes
    sign_in_at_provider(page, "jane")  # the provider asks again: its session ended with the portal's
    expect(page.get_by_role("heading", name="Welcome, Jane Doe")).to_be_visible()
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Governance")).to_be_visible()
    expect(nav.get_by_role("link", name="Customers")).to_have_count(0)  # Staff is gone with its group


def test_provider_down_shows_a_clear_page_and_the_break_glass_administrator_still_signs_in(
    page: Any, sso_live: OpenIDProvider, settings: Any
) -> None:
    settings.SSO_PASSWORD_LOGIN = False
    settings.SSO_BREAK_GLASS_USERS = ["breakglass"]
    UserFactory.create(username="breakglass", first_name="Break", last_name="Glass", roles=["Administrator"])
    sso_live.stop()
    page.goto("/login/")
    page.get_by_role("link", name="Sign in with single sign-on").click()
    expect(page.get_by_role("heading", name="The identity provider is not answering")).to_be_visible()
    page.get_by_role("link", name="Back to the sign-in page").click()
    page.get_by_text("Break-glass administrator sign-in").click()
    page.get_by_label("Username").fill("breakglass")
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Welcome, Break Glass")).to_be_visible()
