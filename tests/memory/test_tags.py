from __future__ import annotations

from typing import Any

import pytest
from django.template import Context, Template
from django.test import RequestFactory

from portal.assistant.models import MessageRole
from tests.assistant.factories import AssistantProfileFactory, ConversationFactory, MessageFactory
from tests.memory.factories import MemoryItemFactory

pytestmark = pytest.mark.django_db

TEMPLATE = Template("{% load memory_tags %}{% memory_citations message %}{% remember_link message %}")


def _render(user: Any, message: Any) -> str:
    request = RequestFactory().get("/")
    request.user = user
    return TEMPLATE.render(Context({"request": request, "message": message}))


def test_an_answer_shows_the_memories_it_used_and_a_remember_link(sam: Any, audrey: Any) -> None:
    used = MemoryItemFactory.create(text="Refunds are paid within 14 days.")
    forgotten = MemoryItemFactory.create(text="Will be forgotten.")
    conversation = ConversationFactory.create(owner=sam, profile=AssistantProfileFactory.create(usable_by=["Staff"]))
    manifest = {
        "parts": [
            {"kind": "chunk", "source": {"chunk_id": 3}},
            {"kind": "memory", "source": {"memory_id": used.pk, "scope": "organisation"}},
            {"kind": "memory", "source": {"memory_id": forgotten.pk, "scope": "organisation"}},
        ]
    }
    answer = MessageFactory.create(
        conversation=conversation, role=MessageRole.ASSISTANT, content="14 days.", manifest=manifest
    )
    forgotten.delete()
    html = _render(sam, answer)
    assert "Refunds are paid within 14 days." in html and used.get_absolute_url() in html
    assert "1 memory used here has since been changed or forgotten." in html
    assert f"/memory/remember/{answer.pk}/" in html
    assert "Remember this" not in _render(audrey, answer)  # read-only role
