"""Ask the assistant in a real browser, served by uvicorn (ASGI) so the answer really streams."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from playwright.sync_api import expect

from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.assistant.conftest import REFUND_TEXT
from tests.assistant.factories import AssistantProfileFactory, knowledge_base_with
from tests.e2e.conftest import sign_in
from tests.e2e.waits import WORK_WAIT_MS
from tests.routing.factories import CatalogModelFactory

pytestmark = pytest.mark.django_db(transaction=True)

ANSWER = "Refunds are paid within 14 days [1]. This holds for every returned item, whatever the shop it came from."


def test_staff_asks_watches_the_answer_stream_opens_details_and_a_citation(asgi_page: Any, fake_provider: Any):
    page = asgi_page
    sam = UserFactory.create(username="sam", first_name="Sam", roles=["Staff"])
    # the server process only knows the production hashers (the tests use MD5 for speed)
    sam.password = PBKDF2PasswordHasher().encode(DEFAULT_PASSWORD, PBKDF2PasswordHasher().salt())
    sam.save(update_fields=["password"])
    handbook = knowledge_base_with(name="Handbook", passages=[("Refund policy", REFUND_TEXT, 3)])
    AssistantProfileFactory.create(name="Handbook helper", usable_by=["Staff"], knowledge_bases=[handbook])
    CatalogModelFactory.create(display_name="Fake primary", api_base=fake_provider.url, tier="economy")
    fake_provider.answer_with(ANSWER)
    fake_provider.hold_stream(after_words=3)  # "Refunds are paid ", then nothing until the test releases it

    sign_in(page, "sam", DEFAULT_PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Assistant").click()
    page.get_by_role("button", name="New conversation").click()
    page.get_by_label("Your question").fill("When are refunds paid?")
    page.get_by_role("button", name="Ask").click()

    # the first words show while the provider is still streaming: no stored answer (details) yet
    streaming = page.locator(".streaming-text")
    # (the server process loads the embedding model on its first question)
    expect(streaming).to_contain_text("Refunds are paid", timeout=WORK_WAIT_MS)
    fake_provider.wait_until_held()  # the provider has sent three words and holds back the rest
    assert page.locator(".answer-details").count() == 0
    assert "within 14 days" not in streaming.inner_text()
    fake_provider.release()

    # then the stored, sanitized answer replaces the streamed text
    answer = page.locator(".chat-assistant").last
    expect(answer.locator(".answer-details")).to_have_count(1)
    expect(answer.locator(".chat-text")).to_contain_text("whatever the shop it came from")
    expect(page.locator(".chat-user")).to_contain_text("When are refunds paid?")

    answer.get_by_text("Details", exact=True).click()
    details = answer.locator(".answer-details")
    expect(details).to_contain_text("Fake primary")
    expect(details).to_contain_text("routine: set by the assistant profile")
    expect(details).to_contain_text("Tokens")
    expect(details.locator("table.manifest")).to_contain_text("chunk [1]")

    answer.locator(".chat-text").get_by_role("link", name="[1]").click()
    expect(page).to_have_url(re.compile(r"/knowledge/documents/\d+/#page-3$"))
    expect(page.get_by_role("heading", name="Refund policy")).to_be_visible()
    # the click went through the answer's source route, which counted it as a ranker signal
    from portal.assistant.models import CitationOpen

    assert CitationOpen.objects.filter(number=1, user=sam).count() == 1
