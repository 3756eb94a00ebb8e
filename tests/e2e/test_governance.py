"""A governance officer changes a rule; a staff member's next answer reflects it (real browser, real stream)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from playwright.sync_api import expect

from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.assistant.conftest import REFUND_TEXT
from tests.assistant.factories import AssistantProfileFactory, knowledge_base_with
from tests.e2e.conftest import sign_in
from tests.e2e.waits import PAGE_WAIT_MS, WORK_WAIT_MS
from tests.routing.factories import CatalogModelFactory

pytestmark = pytest.mark.django_db(transaction=True)

SAW_PLACEHOLDER = "The provider only saw a placeholder for the address."
SAW_ADDRESS = "The provider saw the address itself."
ADDRESS = "jo.bloggs@example.org"
WAIT = PAGE_WAIT_MS  # a page load, or an answer through the portal and the fake provider


def _what_the_provider_saw(body: dict[str, Any]) -> str:
    sent = json.dumps(body.get("messages", []))
    return SAW_ADDRESS if ADDRESS in sent else SAW_PLACEHOLDER


def _ask(page: Any, question: str) -> Any:
    page.get_by_label("Your question").fill(question)
    page.get_by_role("button", name="Ask").click()
    answer = page.locator(".chat-assistant").last
    expect(answer.locator(".answer-details")).to_have_count(1, timeout=WORK_WAIT_MS)  # a ceiling, on a busy machine
    return answer


def test_an_officer_relaxes_a_rule_and_the_next_answer_follows_it(
    asgi_page: Any,  # noqa: F811
    asgi_server: str,  # noqa: F811
    browser: Any,
    fake_provider: Any,
) -> None:
    for username, role in (("sam", "Staff"), ("olivia", "Governance officer")):
        user = UserFactory.create(username=username, roles=[role])
        # the portal runs in its own process with the default hashers, not the tests' fast MD5 one
        user.password = PBKDF2PasswordHasher().encode(DEFAULT_PASSWORD, PBKDF2PasswordHasher().salt())
        user.save(update_fields=["password"])
    handbook = knowledge_base_with(name="Handbook", passages=[("Refund policy", REFUND_TEXT, 3)])
    AssistantProfileFactory.create(name="Handbook helper", usable_by=["Staff"], knowledge_bases=[handbook])
    CatalogModelFactory.create(display_name="Fake primary", api_base=fake_provider.url, tier="economy")
    fake_provider.state.reply = _what_the_provider_saw

    staff = asgi_page
    sign_in(staff, "sam", DEFAULT_PASSWORD)
    staff.get_by_role("navigation", name="Main").get_by_role("link", name="Assistant").click()
    staff.get_by_role("button", name="New conversation").click()
    first = _ask(staff, f"Please answer {ADDRESS} about refunds.")
    expect(first.locator(".chat-text")).to_contain_text(SAW_PLACEHOLDER, timeout=WAIT)
    first.get_by_text("Details", exact=True).click()
    expect(first.locator("table.manifest")).to_contain_text("EMAIL", timeout=WAIT)
    expect(first.locator(".manifest-json")).to_contain_text('"pseudonymized"', timeout=WAIT)
    expect(first.locator(".manifest-json")).to_contain_text("<EMAIL_1>", timeout=WAIT)

    officer_context = browser.new_context(base_url=asgi_server)
    officer_context.set_default_timeout(PAGE_WAIT_MS)
    officer = officer_context.new_page()
    try:
        sign_in(officer, "olivia", DEFAULT_PASSWORD)
        officer.get_by_role("navigation", name="Main").get_by_role("link", name="Governance").click()
        officer.get_by_role("link", name="Edit policy").first.click()
        officer.get_by_label("Staff: EMAIL", exact=True).select_option("allow")
        officer.get_by_label("Reason (needed to publish)").fill("Support addresses may be shared with the model.")
        officer.get_by_role("button", name="Publish").click()
        expect(officer.get_by_role("heading", name="Policy version 2")).to_be_visible(timeout=WAIT)
        expect(officer.locator("table.diff")).to_contain_text("Staff · EMAIL", timeout=WAIT)
    finally:
        officer_context.close()

    second = _ask(staff, f"Please answer {ADDRESS} about refunds again.")
    expect(second.locator(".chat-text")).to_contain_text(SAW_ADDRESS, timeout=WAIT)
    second.get_by_text("Details", exact=True).click()
    expect(second.locator(".manifest-json")).to_contain_text('"EMAIL": "allow"', timeout=WAIT)
    expect(second.locator(".manifest-json")).to_contain_text('"policy_version_number": 2', timeout=WAIT)
