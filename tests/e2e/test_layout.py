"""The layout at a phone's width (390 px) and a laptop's (1280 px): the menu folds away, the chat comes first."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.assistant.factories import AssistantProfileFactory, ConversationFactory, MessageFactory
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 800}


def test_on_a_phone_the_menu_folds_behind_a_button(page: Any) -> None:
    UserFactory.create(username="alice", first_name="Alice", roles=["Administrator"])
    page.set_viewport_size(PHONE)
    sign_in(page, "alice", DEFAULT_PASSWORD)
    expect(page.get_by_role("heading", name="Welcome, Alice")).to_be_visible()

    toggle = page.get_by_role("button", name="Menu")
    navigation = page.get_by_role("navigation", name="Main")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(navigation).to_be_hidden()
    header = page.locator("header.topbar").bounding_box()
    assert header is not None and header["height"] < 70  # one row: the name and the button

    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(navigation.get_by_role("link", name="Assistant")).to_be_visible()
    navigation.locator("summary", has_text="Manage").click()
    expect(navigation.get_by_role("link", name="Users")).to_be_visible()

    page.keyboard.press("Escape")  # closes the Manage menu first, then the whole menu
    expect(navigation.get_by_role("link", name="Users")).to_be_hidden()
    page.keyboard.press("Escape")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(navigation).to_be_hidden()


def test_on_a_laptop_the_administrators_menu_fits_on_one_row(page: Any) -> None:
    UserFactory.create(username="alice", first_name="Alice", roles=["Administrator"], is_staff=True)
    page.set_viewport_size(LAPTOP)
    sign_in(page, "alice", DEFAULT_PASSWORD)
    navigation = page.get_by_role("navigation", name="Main")
    expect(navigation).to_be_visible()
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()
    tops = navigation.locator(":scope > ul > li").evaluate_all(
        "items => items.map(item => Math.round(item.getBoundingClientRect().top))"
    )
    assert len(tops) >= 7 and len(set(tops)) == 1, tops  # no wrapped row
    header = page.locator("header.topbar").bounding_box()
    assert header is not None and header["height"] < 70

    # the administrators' screens are under one menu, which closes on a click elsewhere
    expect(navigation.get_by_role("link", name="AI usage")).to_be_hidden()
    navigation.locator("summary", has_text="Manage").click()
    for name in ("Users", "AI usage", "Models", "Local models", "Site admin"):
        expect(navigation.get_by_role("link", name=name, exact=True)).to_be_visible()
    page.get_by_role("heading", name="Welcome, Alice").click()
    expect(navigation.get_by_role("link", name="Users")).to_be_hidden()
    navigation.locator("summary", has_text="Manage").click()
    navigation.get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    expect(navigation.locator("summary.current")).to_have_text("Manage")


def test_on_a_phone_the_question_box_is_in_view_without_scrolling(page: Any) -> None:
    sam = UserFactory.create(username="sam", roles=["Staff"])
    profile = AssistantProfileFactory.create(name="Handbook helper", usable_by=["Staff"])
    for number in range(8):
        ConversationFactory.create(owner=sam, profile=profile, title=f"Older conversation {number}")
    conversation = ConversationFactory.create(owner=sam, profile=profile, title="Refunds")
    for number in range(6):  # a conversation longer than the screen
        MessageFactory.create(conversation=conversation, content=f"Question {number} " + "about refunds " * 30)
    page.set_viewport_size(PHONE)
    sign_in(page, "sam", DEFAULT_PASSWORD)
    page.goto(f"/assistant/conversations/{conversation.pk}/")
    question = page.get_by_label("Your question")
    expect(question).to_be_visible()
    box = question.bounding_box()
    assert box is not None and box["y"] + box["height"] <= PHONE["height"], box
    ask = page.get_by_role("button", name="Ask").bounding_box()
    assert ask is not None and ask["y"] + ask["height"] <= PHONE["height"]
    # the conversation comes before the list of conversations
    heading = page.get_by_role("heading", name="Refunds").bounding_box()
    sidebar = page.get_by_role("complementary", name="Conversations").bounding_box()
    assert heading is not None and sidebar is not None and heading["y"] < sidebar["y"]
    page.get_by_role("link", name="All conversations").click()
    expect(page.get_by_role("link", name="Older conversation 0")).to_be_in_viewport()
