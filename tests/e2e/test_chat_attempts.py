"""Stop a streaming answer, regenerate it, edit a question and send it again, in a real browser (uvicorn)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from playwright.sync_api import expect

from portal.assistant.models import Message, MessageStatus
from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.assistant.conftest import REFUND_TEXT
from tests.assistant.factories import AssistantProfileFactory, knowledge_base_with
from tests.e2e.conftest import sign_in
from tests.e2e.waits import WORK_WAIT_MS
from tests.routing.factories import CatalogModelFactory

pytestmark = pytest.mark.django_db(transaction=True)

ANSWER = "Refunds are paid within 14 days [1]. This holds for every returned item, whatever the shop it came from."


def _stored(**filters: Any) -> Message:
    """The message the server process stores; polled, with a ceiling, since it is written in another process."""
    deadline = time.monotonic() + WORK_WAIT_MS / 1000
    while time.monotonic() < deadline:
        found = Message.objects.filter(**filters).first()
        if found is not None:
            return found
        time.sleep(0.1)
    pytest.fail(f"no message {filters} was stored")


def _set_up(fake_provider: Any) -> None:
    sam = UserFactory.create(username="sam", first_name="Sam", roles=["Staff"])
    sam.password = PBKDF2PasswordHasher().encode(DEFAULT_PASSWORD, PBKDF2PasswordHasher().salt())
    sam.save(update_fields=["password"])
    handbook = knowledge_base_with(name="Handbook", passages=[("Refund policy", REFUND_TEXT, 3)])
    AssistantProfileFactory.create(name="Handbook helper", usable_by=["Staff"], knowledge_bases=[handbook])
    CatalogModelFactory.create(display_name="Fake primary", api_base=fake_provider.url, tier="economy")


def test_stop_keeps_what_came_then_regenerate_and_edit_and_resend(asgi_page: Any, fake_provider: Any):
    page = asgi_page
    _set_up(fake_provider)
    fake_provider.answer_with(ANSWER)
    fake_provider.hold_stream(after_words=3)  # "Refunds are paid ", then nothing until released

    sign_in(page, "sam", DEFAULT_PASSWORD)
    page.goto("/assistant/")
    page.get_by_role("button", name="New conversation").click()
    page.get_by_label("Your question").fill("When are refunds paid?")
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    page.get_by_role("button", name="Ask").click()

    expect(page.locator(".streaming-text")).to_contain_text("Refunds are paid", timeout=WORK_WAIT_MS)
    page.get_by_role("button", name="Stop").click()

    answer = page.locator(".chat-assistant").last
    expect(answer.locator(".tag.stopped")).to_be_visible()
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    expect(page.get_by_role("button", name="Ask")).to_be_enabled()
    stopped = _stored(role="assistant", status=MessageStatus.STOPPED)
    assert stopped.content.startswith("Refunds are paid") and "whatever the shop" not in stopped.content
    fake_provider.release()

    # after a reload the stored, stopped answer offers a new attempt; the first one stays
    page.reload()
    first = page.locator(".chat-assistant").last
    expect(first.locator(".stopped-note")).to_be_visible()
    fake_provider.reset()
    fake_provider.answer_with("A second attempt: refunds are paid within 14 days.")
    first.get_by_role("button", name="Regenerate").click()
    expect(page.locator(".chat-assistant")).to_have_count(2)
    expect(page.locator(".chat-assistant").last).to_contain_text("A second attempt", timeout=WORK_WAIT_MS)
    expect(page.locator(".chat-assistant").last.locator(".tag.attempt")).to_have_text("attempt 2 of 2")
    assert Message.objects.filter(role="user").count() == 1

    # edit the question and send it again: a new question that says it is an edited copy
    fake_provider.answer_with("Damaged items are refunded within 30 days.")
    question = page.locator(".chat-user").first
    question.get_by_text("Edit", exact=True).click()
    question.get_by_label("Edited question").fill("When are damaged items refunded?")
    question.get_by_role("button", name="Send edited question").click()
    edited = page.locator(".chat-user").last
    expect(edited).to_contain_text("When are damaged items refunded?", timeout=WORK_WAIT_MS)
    expect(edited.locator(".tag")).to_have_text("edited")
    expect(page.locator(".chat-assistant").last).to_contain_text("within 30 days", timeout=WORK_WAIT_MS)
    expect(page.locator(".chat-user")).to_have_count(2)
    assert _stored(role="user", content="When are damaged items refunded?").edited_from_id is not None
