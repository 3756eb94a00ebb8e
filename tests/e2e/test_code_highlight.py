"""Code in an answer is coloured in the browser: the chat page loads highlight.css from the portal itself, and the
colours follow the theme (the browser's preference, and the toggle over it) with readable contrast."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.assistant.factories import AssistantProfileFactory, ConversationFactory, MessageFactory
from tests.e2e.conftest import sign_in
from tests.e2e.waits import PAGE_WAIT_MS

pytestmark = pytest.mark.django_db(transaction=True)

XCODE_KEYWORD = "rgb(169, 13, 145)"  # #A90D91
MONOKAI_NAMESPACE_KEYWORD = "rgb(255, 70, 137)"  # #FF4689
# the lowest WCAG contrast of a coloured token on the background of the nearest ancestor that has one
WEAKEST_CONTRAST = """() => {
  const rgb = value => value.match(/[\\d.]+/g).slice(0, 4).map(Number);
  const luminance = ([r, g, b]) => [r, g, b].map(c => c / 255)
    .map(c => c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4)
    .reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
  const contrast = element => {
    let behind = element;
    while ((rgb(getComputedStyle(behind).backgroundColor)[3] ?? 1) === 0) behind = behind.parentElement;
    const ink = luminance(rgb(getComputedStyle(element).color));
    const paper = luminance(rgb(getComputedStyle(behind).backgroundColor));
    return (Math.max(ink, paper) + 0.05) / (Math.min(ink, paper) + 0.05);
  };
  return Math.min(...[...document.querySelectorAll(".highlight span[class]:not(.w)")].map(contrast));
}"""
CODE = """```python
import os

# every file, sorted
def listing(path: str) -> list[str]:
    return sorted(os.listdir(path or "."))
```"""


@pytest.fixture
def answer_with_code() -> Any:
    sam = UserFactory.create(username="sam", roles=["Staff"])
    conversation = ConversationFactory.create(owner=sam, profile=AssistantProfileFactory.create(usable_by=["Staff"]))
    question = MessageFactory.create(conversation=conversation, content="How do I list a folder?")
    MessageFactory.create(
        conversation=conversation, role="assistant", content="Like this:\n\n" + CODE, reply_to=question
    )
    return conversation


def test_code_colours_are_served_locally_and_follow_the_theme(browser: Any, live_server: Any, answer_with_code: Any):
    context = browser.new_context(base_url=live_server.url, color_scheme="dark")
    context.set_default_timeout(PAGE_WAIT_MS)
    page = context.new_page()
    try:
        sign_in(page, "sam", DEFAULT_PASSWORD)
        page.wait_for_url("**/")
        with page.expect_response(lambda response: "/css/highlight" in response.url) as stylesheet:
            page.goto(f"/assistant/conversations/{answer_with_code.pk}/")
        assert stylesheet.value.status == 200 and stylesheet.value.url.startswith(live_server.url)
        keyword = page.locator(".highlight .kn").first

        expect(keyword).to_have_css("color", MONOKAI_NAMESPACE_KEYWORD)  # the browser prefers dark
        assert page.evaluate(WEAKEST_CONTRAST) >= 4.5
        page.locator(".theme-toggle").click()  # the toggle chooses light over the browser's preference
        expect(page.locator("html")).to_have_attribute("data-theme", "light")
        expect(keyword).to_have_css("color", XCODE_KEYWORD)
        assert page.evaluate(WEAKEST_CONTRAST) >= 4.5
        page.emulate_media(color_scheme="light")
        page.locator(".theme-toggle").click()  # and dark over a light preference
        expect(page.locator("html")).to_have_attribute("data-theme", "dark")
        expect(keyword).to_have_css("color", MONOKAI_NAMESPACE_KEYWORD)
        assert page.evaluate(WEAKEST_CONTRAST) >= 4.5
    finally:
        context.close()
