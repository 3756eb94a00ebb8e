"""Searching one's own conversations: titles and messages, never another user's, the snippet escaped."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from portal.assistant.selectors import conversation_search
from tests.accounts.factories import UserFactory
from tests.assistant.factories import AssistantProfileFactory, ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

SEARCH_URL = reverse("assistant:search")


@pytest.fixture
def helper(db: None) -> Any:
    return AssistantProfileFactory.create(name="Helper", usable_by=["Staff", "Administrator"])


@pytest.fixture
def refunds(sam: Any, helper: Any) -> Any:
    conversation = ConversationFactory.create(owner=sam, profile=helper, title="Money back")
    MessageFactory.create(conversation=conversation, content="When is the warehouse open?")
    MessageFactory.create(conversation=conversation, content="How are refunds paid to customers?")
    return conversation


def test_it_finds_own_conversations_by_a_word_of_a_message_and_links_to_that_message(
    client: Any, sam: Any, refunds: Any
) -> None:
    client.force_login(sam)
    response = client.get(SEARCH_URL, {"q": "refund"})
    page = response.content.decode()
    message = refunds.messages.get(content__contains="refunds")
    assert response.status_code == 200
    assert f'href="/assistant/conversations/{refunds.pk}/#message-{message.pk}"' in page
    assert "Money back" in page and "<mark>refunds</mark>" in page


def test_it_finds_by_title_and_by_a_word_being_typed(sam: Any, refunds: Any, helper: Any) -> None:
    ConversationFactory.create(owner=sam, profile=helper, title="Holiday planning")
    assert [hit.title for hit in conversation_search(user=sam, text="holid")] == ["Holiday planning"]
    assert [hit.title for hit in conversation_search(user=sam, text="wareh open")] == ["Money back"]
    assert conversation_search(user=sam, text="warehouse closed") == []  # every word must match


def test_it_never_returns_another_users_conversation_even_to_an_administrator(
    client: Any, sam: Any, alice: Any, refunds: Any, helper: Any
) -> None:
    other = UserFactory.create(username="sara", roles=["Staff"])
    secret = ConversationFactory.create(owner=other, profile=helper, title="Refunds of Sara")
    MessageFactory.create(conversation=secret, content="Refunds for the Sara account")
    assert [hit.conversation_id for hit in conversation_search(user=sam, text="refunds")] == [refunds.pk]
    assert conversation_search(user=alice, text="refunds") == []
    for user in (sam, alice):
        client.force_login(user)
        page = client.get(SEARCH_URL, {"q": "refunds"}, headers={"HX-Request": "true"}).content.decode()
        assert "Sara" not in page and f"/conversations/{secret.pk}/" not in page


def test_a_script_in_a_message_is_shown_as_text(client: Any, sam: Any, helper: Any) -> None:
    conversation = ConversationFactory.create(owner=sam, profile=helper, title="<b>Odd</b> title")
    MessageFactory.create(conversation=conversation, content='Payload <script>alert("pwned")</script> if 1 < 2 & x')
    client.force_login(sam)
    page = client.get(SEARCH_URL, {"q": "payload"}, headers={"HX-Request": "true"}).content.decode()
    assert "<mark>Payload</mark>" in page
    # ts_headline leaves tags out of the snippet; whatever it keeps is escaped
    assert "<script" not in page and 'alert("pwned")' in page and "1 &lt; 2 &amp; x" in page
    assert "<b>Odd</b>" not in page and "&lt;b&gt;Odd&lt;/b&gt; title" in page


def test_the_live_search_answers_with_the_results_fragment_only(client: Any, sam: Any, refunds: Any) -> None:
    client.force_login(sam)
    page = client.get(SEARCH_URL, {"q": "refunds"}, headers={"HX-Request": "true"}).content.decode()
    assert page.lstrip().startswith('<div id="search-results"') and "<html" not in page


def test_an_empty_query_says_what_to_type_and_no_match_says_so(client: Any, sam: Any, refunds: Any) -> None:
    client.force_login(sam)
    page = client.get(SEARCH_URL, {"q": "  "}).content.decode()
    assert "Type a word to search" in page and "<html" in page  # the plain form's fallback: the whole page
    page = client.get(SEARCH_URL, {"q": "zebra"}).content.decode()
    assert "None of your conversations matches “zebra”." in page


def test_only_users_of_the_assistant_may_search(client: Any, oscar: Any, audrey: Any) -> None:
    for user in (oscar, audrey):
        client.force_login(user)
        assert client.get(SEARCH_URL, {"q": "refunds"}).status_code == 403
    client.logout()
    assert client.get(SEARCH_URL, {"q": "refunds"}).status_code == 302


def test_a_too_long_query_is_refused_with_the_reason(client: Any, sam: Any) -> None:
    client.force_login(sam)
    response = client.get(SEARCH_URL, {"q": "x" * 201})
    assert response.status_code == 400 and "at most 200 characters" in response.content.decode()
