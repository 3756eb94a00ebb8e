"""The everyday tools around an answer: copy, compact feedback, dark mode, and a rename that says what is wrong."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from portal.assistant.forms import ERROR_EMPTY_TITLE
from portal.assistant.models import Message
from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.assistant.factories import AssistantProfileFactory, ConversationFactory, MessageFactory
from tests.e2e.conftest import sign_in
from tests.e2e.waits import PAGE_WAIT_MS

pytestmark = pytest.mark.django_db(transaction=True)

ANSWER = "Refunds are paid within 14 days."


@pytest.fixture
def conversation() -> Any:
    sam = UserFactory.create(username="sam", roles=["Staff"])
    conversation = ConversationFactory.create(
        owner=sam, profile=AssistantProfileFactory.create(usable_by=["Staff"]), title="Refunds"
    )
    question = MessageFactory.create(conversation=conversation, content="When are refunds paid?")
    MessageFactory.create(conversation=conversation, role="assistant", content=ANSWER, reply_to=question)
    MessageFactory.create(conversation=conversation, content="And for damaged items?")
    MessageFactory.create(conversation=conversation, role="assistant", content="", status="error",
                   error="No model could answer right now.")  # fmt: skip
    return conversation


def _open(page: Any, conversation: Any) -> None:
    sign_in(page, "sam", DEFAULT_PASSWORD)
    page.goto(f"/assistant/conversations/{conversation.pk}/")


def test_copy_an_answer_and_rate_it_with_a_thumb_then_a_comment(page: Any, conversation: Any) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    _open(page, conversation)
    answer, failed = page.locator(".chat-assistant").all()

    answer.get_by_role("button", name="Copy").click()
    expect(answer.get_by_role("status").filter(has_text="Copied.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == ANSWER

    # the error answer has no feedback control at all
    expect(failed.locator(".feedback")).to_have_count(0)
    expect(answer.get_by_role("textbox")).to_have_count(0)  # no comment box before a thumb
    helpful = answer.get_by_role("button", name="Helpful", exact=True)
    expect(helpful).to_have_attribute("aria-pressed", "false")
    helpful.click()
    expect(answer.get_by_role("button", name="Helpful", exact=True)).to_have_attribute("aria-pressed", "true")
    comment = answer.get_by_label("Comment")
    expect(comment).to_be_visible()  # opens by itself after the thumb
    comment.fill("Exactly what I needed.")
    answer.get_by_role("button", name="Send comment").click()
    expect(answer.get_by_text("Your comment")).to_be_visible()
    rated = Message.objects.get(content=ANSWER)
    assert (rated.feedback, rated.feedback_comment) == (1, "Exactly what I needed.")


def test_dark_mode_follows_the_browser_and_the_toggle_is_remembered(
    browser: Any, live_server: Any, conversation: Any
) -> None:
    context = browser.new_context(base_url=live_server.url, color_scheme="dark")
    context.set_default_timeout(PAGE_WAIT_MS)
    page = context.new_page()
    try:
        _open(page, conversation)
        background = "getComputedStyle(document.documentElement).backgroundColor"
        assert page.evaluate(background) == "rgb(18, 22, 28)"  # the dark theme, untouched
        toggle = page.get_by_role("button", name="Dark mode")
        expect(toggle).to_have_attribute("aria-pressed", "true")
        toggle.click()
        expect(toggle).to_have_attribute("aria-pressed", "false")
        assert page.evaluate(background) == "rgb(246, 247, 249)"
        page.reload()
        expect(page.get_by_role("button", name="Dark mode")).to_have_attribute("aria-pressed", "false")
        assert page.evaluate(background) == "rgb(246, 247, 249)"  # the choice is kept
    finally:
        context.close()


def test_an_empty_rename_says_so(page: Any, conversation: Any) -> None:
    _open(page, conversation)
    head = page.locator("#conversation-head")
    head.get_by_text("Rename or delete").click()
    head.get_by_label("Title").fill("   ")
    head.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("alert").filter(has_text=ERROR_EMPTY_TITLE)).to_be_visible()
    expect(page.get_by_role("heading", name="Refunds")).to_be_visible()
