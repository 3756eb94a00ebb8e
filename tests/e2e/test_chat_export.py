"""Exporting a conversation in a real browser: the Markdown link of the conversation head downloads a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from audit.models import AuditEvent
from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.assistant.factories import AssistantProfileFactory, ConversationFactory, MessageFactory
from tests.e2e.conftest import sign_in
from tests.e2e.waits import PAGE_WAIT_MS

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("width", [390, 1280])
def test_the_markdown_link_downloads_the_conversation(browser: Any, live_server: Any, width: int) -> None:
    sam = UserFactory.create(username="sam", roles=["Staff"])
    profile = AssistantProfileFactory.create(name="Handbook helper", usable_by=["Staff"])
    refunds = ConversationFactory.create(owner=sam, profile=profile, title="Money back")
    question = MessageFactory.create(conversation=refunds, content="How are refunds paid to customers?")
    MessageFactory.create(conversation=refunds, role="assistant", content="By bank transfer.", reply_to=question)
    viewport = {"width": width, "height": 844}
    context = browser.new_context(base_url=live_server.url, viewport=viewport, accept_downloads=True)
    context.set_default_timeout(PAGE_WAIT_MS)
    try:
        page = context.new_page()
        sign_in(page, "sam", DEFAULT_PASSWORD)
        page.wait_for_url(lambda url: "/login/" not in url)
        page.goto(f"/assistant/conversations/{refunds.pk}/")

        head = page.locator("#conversation-head")
        link = head.get_by_role("link", name="Export as Markdown")
        expect(link).to_be_visible()
        expect(head.get_by_role("link", name="Export as HTML")).to_be_visible()
        with page.expect_download() as download_info:
            link.click()
        download = download_info.value
        assert download.suggested_filename == "money-back.md"
        text = Path(download.path()).read_text(encoding="utf-8")
        assert text.startswith("# Money back\n")
        assert "How are refunds paid to customers?" in text and "By bank transfer." in text
        expect(page).to_have_url(f"{live_server.url}/assistant/conversations/{refunds.pk}/")  # still on the chat
    finally:
        context.close()
    assert AuditEvent.objects.filter(action="assistant.conversation_exported", object_id=str(refunds.pk)).count() == 1
