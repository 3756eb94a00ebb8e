"""Exporting one's own conversation as Markdown or HTML: owner only, what the chat shows, audited without content."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from portal.assistant.export import ERROR_EXPORT_FORMAT
from portal.assistant.models import MessageStatus
from tests.accounts.factories import UserFactory
from tests.assistant.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

QUESTION = "When are refunds paid?"
ANSWER = "Refunds are paid **within 14 days** [1]."
CITATIONS = [
    {
        "number": 1, "chunk_id": 9101, "document_id": 9202, "document_title": "Refund policy",
        "knowledge_base_name": "Handbook", "page_number": 3, "url": "/knowledge/documents/9202/#chunk-9101",
        "score": 0.91, "page_end": None, "pages": "page 3", "cited": True,
    },
    {
        "number": 2, "chunk_id": 9103, "document_id": 9204, "document_title": "Uncited memo",
        "knowledge_base_name": "Handbook", "page_number": None, "url": "/knowledge/documents/9204/",
        "score": 0.2, "page_end": None, "pages": "", "cited": False,
    },
]  # fmt: skip


def export_url(conversation: Any) -> str:
    return reverse("assistant:conversation_export", kwargs={"conversation_id": conversation.pk})


@pytest.fixture
def refunds(conversation: Any) -> Any:
    conversation.title = "Refunds: the rules"
    conversation.save()
    question = MessageFactory.create(conversation=conversation, content=QUESTION)
    MessageFactory.create(
        conversation=conversation, role="assistant", content=ANSWER, reply_to=question, citations=CITATIONS,
        route={"candidates": ["model:1"], "tier": "standard"}, usage={"model_key": "model:1"},
    )  # fmt: skip
    blocked = MessageFactory.create(conversation=conversation, content="What is Jane's salary?")
    MessageFactory.create(
        conversation=conversation, role="assistant", content="", reply_to=blocked, status=MessageStatus.BLOCKED,
        error="Salary records may not be sent to a model.",
    )  # fmt: skip
    return conversation


def test_the_owner_downloads_markdown_with_questions_answers_and_sources(client: Any, sam: Any, refunds: Any) -> None:
    client.force_login(sam)
    response = client.get(export_url(refunds))
    text = response.content.decode()
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="refunds-the-rules.md"'
    assert response["Cache-Control"] == "no-store"
    assert text.startswith("# Refunds: the rules\n")
    assert "Assistant: Handbook helper" in text
    assert "**You** · " in text and QUESTION in text and ANSWER in text
    assert "- [1] Refund policy, page 3 (Handbook)" in text
    assert "Uncited memo" not in text  # the chat lists only the sources the answer cites
    assert "*Blocked by governance*" in text and "Salary records may not be sent to a model." in text
    # no internal keys or ids of the routing and retrieval
    assert "model:1" not in text and "9101" not in text and "/knowledge/" not in text


def test_the_owner_downloads_one_standalone_html_page(client: Any, sam: Any, refunds: Any) -> None:
    client.force_login(sam)
    response = client.get(export_url(refunds), {"format": "html"})
    page = response.content.decode()
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="refunds-the-rules.html"'
    assert response["Cache-Control"] == "no-store"
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    assert "<title>Refunds: the rules</title>" in page and "@media print" in page
    assert QUESTION in page and "<strong>within 14 days</strong>" in page  # the answer rendered as markdown
    # [1] points at its source in the same page, not at a portal URL that would not work from a file
    message = refunds.messages.get(role="assistant", status=MessageStatus.COMPLETE)
    assert f'href="#source-{message.pk}-1"' in page and f'id="source-{message.pk}-1"' in page
    assert "Refund policy, page 3 (Handbook)" in page and "Uncited memo" not in page
    assert "Blocked by governance" in page and "Salary records may not be sent to a model." in page
    for external in ("<script", "<link", "<img", "src=", "http://", "https://", "/knowledge/"):
        assert external not in page


def test_a_script_in_a_question_or_title_is_escaped_in_html(client: Any, sam: Any, conversation: Any) -> None:
    conversation.title = "<b>Odd</b> title"
    conversation.save()
    MessageFactory.create(conversation=conversation, content="Hi <script>alert(1)</script> & 1 < 2")
    MessageFactory.create(
        conversation=conversation, role="assistant", content="Sure <script>alert(2)</script><img src=x>"
    )
    client.force_login(sam)
    page = client.get(export_url(conversation), {"format": "html"}).content.decode()
    assert "<script" not in page and "<img" not in page and "<b>Odd</b>" not in page
    assert "Hi &lt;script&gt;alert(1)&lt;/script&gt; &amp; 1 &lt; 2" in page and "alert(2)" not in page
    assert "<title>&lt;b&gt;Odd&lt;/b&gt; title</title>" in page


def test_another_users_conversation_is_not_found_even_for_an_administrator(
    client: Any, alice: Any, refunds: Any, profile: Any
) -> None:
    other = UserFactory.create(username="sara", roles=["Staff"])
    for user in (other, alice):
        client.force_login(user)
        for fmt in ("md", "html"):
            assert client.get(export_url(refunds), {"format": fmt}).status_code == 404
    assert not AuditEvent.objects.filter(action="assistant.conversation_exported").exists()


def test_anonymous_visitors_are_sent_to_sign_in(client: Any, refunds: Any) -> None:
    response = client.get(export_url(refunds))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_each_export_is_audited_with_ids_format_and_count_only(client: Any, sam: Any, refunds: Any) -> None:
    client.force_login(sam)
    client.get(export_url(refunds), {"format": "html"})
    client.get(export_url(refunds))
    events = list(AuditEvent.objects.filter(action="assistant.conversation_exported").order_by("seq"))
    assert [event.details for event in events] == [
        {"conversation_id": refunds.pk, "format": "html", "messages": 4},
        {"conversation_id": refunds.pk, "format": "md", "messages": 4},
    ]
    assert {(event.actor_id, event.object_type, event.object_id) for event in events} == {
        (sam.pk, "assistant.conversation", str(refunds.pk))
    }
    stored = json.dumps([event.details for event in events])
    for content in ("Refunds", "rules", "refunds", "14 days", "salary", "Refund policy"):
        assert content.lower() not in stored.lower()


def test_an_unknown_format_is_refused_with_a_clear_message_and_not_audited(client: Any, sam: Any, refunds: Any) -> None:
    client.force_login(sam)
    response = client.get(export_url(refunds), {"format": "pdf"})
    assert response.status_code == 400
    assert ERROR_EXPORT_FORMAT in response.content.decode()
    assert not AuditEvent.objects.filter(action="assistant.conversation_exported").exists()


def test_a_title_without_latin_letters_gives_a_fallback_filename(client: Any, sam: Any, profile: Any) -> None:
    conversation = ConversationFactory.create(owner=sam, profile=profile, title="返金について")
    client.force_login(sam)
    response = client.get(export_url(conversation))
    assert response["Content-Disposition"] == f'attachment; filename="conversation-{conversation.pk}.md"'


def test_the_conversation_head_links_both_exports(client: Any, sam: Any, refunds: Any) -> None:
    client.force_login(sam)
    page = client.get(reverse("assistant:conversation", kwargs={"conversation_id": refunds.pk})).content.decode()
    assert f'href="{export_url(refunds)}?format=md" download' in page
    assert f'href="{export_url(refunds)}?format=html" download' in page
