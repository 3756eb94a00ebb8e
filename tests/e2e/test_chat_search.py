"""Searching one's conversations in a real browser: typing shows live results that open the matching message."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.assistant.factories import AssistantProfileFactory, ConversationFactory, MessageFactory
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_typing_a_word_shows_the_matching_conversation_and_opens_its_message(page: Any) -> None:
    sam = UserFactory.create(username="sam", roles=["Staff"])
    profile = AssistantProfileFactory.create(usable_by=["Staff"])
    ConversationFactory.create(owner=sam, profile=profile, title="Holidays")
    refunds = ConversationFactory.create(owner=sam, profile=profile, title="Money back")
    question = MessageFactory.create(conversation=refunds, content="How are refunds paid to customers?")
    sign_in(page, "sam", DEFAULT_PASSWORD)
    page.goto("/assistant/?all")

    page.get_by_label("Search your conversations").press_sequentially("refun")  # live: no submit
    results = page.locator("#search-results")
    expect(results.get_by_role("link", name="Money back")).to_be_visible()
    expect(results.locator("mark")).to_have_text("refunds")
    expect(results.get_by_role("link", name="Holidays")).to_have_count(0)
    results.get_by_role("link", name="Money back").click()
    page.wait_for_url(f"**/assistant/conversations/{refunds.pk}/#message-{question.pk}")
