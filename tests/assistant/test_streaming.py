"""The answer streams: JSON lines (question, delta..., done) from the async view, piece by piece."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from django.urls import reverse

from portal.assistant import services
from portal.assistant.models import MessageStatus
from tests.fakes.provider import DEFAULT_REPLY

pytestmark = pytest.mark.django_db

STREAM = "application/x-ndjson"


def post_streaming(user: Any, url: str, data: dict[str, str]) -> tuple[Any, list[tuple[float, dict[str, Any]]]]:
    """POST as assistant.js does and read the body as it arrives: (arrival time, event) per line."""

    async def go() -> tuple[Any, list[tuple[float, dict[str, Any]]]]:
        client = AsyncClient()
        await client.aforce_login(user)
        response = await client.post(url, data, headers={"accept": STREAM})
        events: list[tuple[float, dict[str, Any]]] = []
        if response.streaming:
            async for chunk in response.streaming_content:
                arrived = time.perf_counter()
                events += [(arrived, json.loads(line)) for line in chunk.decode().splitlines() if line.strip()]
        return response, events

    return async_to_sync(go)()


def ask_url(conversation: Any) -> str:
    return reverse("assistant:ask", kwargs={"conversation_id": conversation.pk})


def test_the_answer_streams_piece_by_piece_before_the_stored_answer_arrives(
    sam: Any, conversation: Any, fake_model: Any, fake_provider: Any
):
    fake_provider.state.chunk_delay = 0.05  # the provider takes ~0.6 s to stream its answer
    response, timed = post_streaming(sam, ask_url(conversation), {"question": "When are refunds paid?"})

    assert response.status_code == 200 and response["Content-Type"] == STREAM
    kinds = [event["event"] for _, event in timed]
    assert kinds[0] == "question" and kinds[-1] == "done"
    assert kinds.count("delta") >= 5 and set(kinds[1:-1]) == {"delta"}
    deltas = [(arrived, event) for arrived, event in timed if event["event"] == "delta"]
    done_at = timed[-1][0]
    assert done_at - deltas[0][0] > 0.3  # the first words were readable well before the end
    assert "".join(event["text"] for _, event in deltas) == DEFAULT_REPLY
    answer = conversation.messages.get(role="assistant")
    assert answer.content == DEFAULT_REPLY and answer.status == MessageStatus.COMPLETE
    done = timed[-1][1]
    assert done["id"] == answer.pk and f'id="message-{answer.pk}"' in done["html"]
    assert "<summary>Details</summary>" in done["html"]
    assert done["timings"]["overhead_ms"] > 0


def test_the_stream_carries_the_question_fragment_first(sam: Any, conversation: Any):
    conversation.title = services.DEFAULT_TITLE
    conversation.save()
    response, timed = post_streaming(sam, ask_url(conversation), {"question": "When are refunds paid?"})

    question = conversation.messages.get(role="user")
    first = timed[0][1]
    assert first == {"event": "question", "id": question.pk, "html": first["html"], "title": first["title"]}
    conversation.refresh_from_db()
    assert first["title"] == conversation.title == "When are refunds paid?"
    assert "When are refunds paid?" in first["html"]


def test_a_bad_question_is_a_400_page_not_a_stream(sam: Any, conversation: Any):
    response, timed = post_streaming(sam, ask_url(conversation), {"question": ""})

    assert response.status_code == 400 and timed == []


def test_a_stream_for_someone_elses_conversation_is_404(audrey: Any, conversation: Any, alice: Any):
    response, timed = post_streaming(alice, ask_url(conversation), {"question": "Hi"})

    assert response.status_code == 404 and not conversation.messages.exists()
