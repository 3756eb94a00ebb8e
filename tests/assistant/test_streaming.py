"""The answer streams: JSON lines (question, delta..., done) from the async view, piece by piece."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from django.urls import reverse

from portal.assistant import services
from portal.assistant.models import MessageStatus
from tests.fakes.provider import DEFAULT_REPLY
from tests.responses import streaming

pytestmark = pytest.mark.django_db

STREAM = "application/x-ndjson"


def post_streaming(
    user: Any, url: str, data: dict[str, str], on_event: Callable[[dict[str, Any]], None] | None = None
) -> tuple[Any, list[tuple[float, dict[str, Any]]]]:
    """POST as assistant.js does and read the body as it arrives: (arrival time, event) per line.

    `on_event` sees each event as it arrives, while the rest of the answer is still to come."""

    async def go() -> tuple[Any, list[tuple[float, dict[str, Any]]]]:
        client = AsyncClient()
        await client.aforce_login(user)
        response = await client.post(url, data, headers={"accept": STREAM})
        events: list[tuple[float, dict[str, Any]]] = []
        if response.streaming:
            async for chunk in streaming(response):
                arrived = time.perf_counter()
                for line in chunk.decode().splitlines():
                    if line.strip():
                        events.append((arrived, json.loads(line)))
                        if on_event is not None:
                            on_event(events[-1][1])
        return response, events

    return async_to_sync(go)()


def ask_url(conversation: Any) -> str:
    return reverse("assistant:ask", kwargs={"conversation_id": conversation.pk})


def test_the_answer_streams_piece_by_piece_before_the_stored_answer_arrives(
    sam: Any, conversation: Any, fake_model: Any, fake_provider: Any
):
    fake_provider.hold_stream(after_words=3)  # the provider stops after three words until released
    head = "".join(DEFAULT_REPLY.split(" ")[i] + " " for i in range(3))  # "This is the "
    seen_while_held: list[str] = []

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] != "delta" or seen_while_held:
            return
        fake_provider.wait_until_held()  # the provider has sent three words and is paused
        seen_while_held.append(event["text"])
        fake_provider.release()

    response, timed = post_streaming(sam, ask_url(conversation), {"question": "When are refunds paid?"}, on_event)

    # the first words reached the reader while the provider was provably still holding the rest back
    assert seen_while_held and head.startswith(seen_while_held[0]) and seen_while_held[0]
    assert response.status_code == 200 and response["Content-Type"] == STREAM
    kinds = [event["event"] for _, event in timed]
    assert kinds[0] == "question" and kinds[-1] == "done"
    # the held head, then the rest (pieces that come within the flush interval share a line)
    assert kinds.count("delta") >= 2 and set(kinds[1:-1]) == {"delta"}
    deltas = [event for _, event in timed if event["event"] == "delta"]
    assert "".join(event["text"] for event in deltas) == DEFAULT_REPLY
    answer = conversation.messages.get(role="assistant")
    assert answer.content == DEFAULT_REPLY and answer.status == MessageStatus.COMPLETE
    done = timed[-1][1]
    assert done["id"] == answer.pk and f'id="message-{answer.pk}"' in done["html"]
    assert "<summary>Details</summary>" in done["html"]
    assert done["timings"]["overhead_ms"] > 0


def test_the_done_event_says_how_long_the_view_took_to_its_first_answer_piece(
    sam: Any, conversation: Any, fake_model: Any
):
    sent = time.perf_counter()
    _, timed = post_streaming(sam, ask_url(conversation), {"question": "When are refunds paid?"})

    first_arrival = next(arrived for arrived, event in timed if event["event"] == "delta")
    timings = timed[-1][1]["timings"]
    # after the question was prepared (inside the view), before the reader had the piece (outside it)
    assert timings["prepare_ms"] <= timings["first_delta_ms"] <= (first_arrival - sent) * 1000
    # (total_ms is no bound: it starts later, with the pipeline, after the view has loaded the conversation)


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


def test_a_streaming_answer_arrives_as_sanitized_markdown_before_it_is_stored(
    sam: Any, conversation: Any, fake_model: Any, fake_provider: Any
):
    table = "| Day | Refund |\n|---|---|\n| 1 | yes |\n\n"
    reply = "## Answer\n\n" + table + "<script>alert(1)</script>\n\n```\ncode " + "x " * 100
    fake_provider.answer_with(reply)

    response, timed = post_streaming(sam, ask_url(conversation), {"question": "When are refunds paid?"})

    deltas = [event for _, event in timed if event["event"] == "delta"]
    rendered = [event["html"] for event in deltas if "html" in event]
    assert any("<h2>Answer</h2>" in html and "<table>" in html for html in rendered)
    assert all("<script" not in html for html in rendered)
    assert "<pre><code>code" in rendered[-1]  # the open fence is shown as code while it streams
    assert "".join(event["text"] for event in deltas) == reply


def test_pieces_that_come_close_together_go_out_as_one_line(
    sam: Any, conversation: Any, fake_model: Any, settings: Any
):
    settings.ASSISTANT_STREAM_FLUSH_MS = 60_000  # longer than the whole answer takes
    _, timed = post_streaming(sam, ask_url(conversation), {"question": "When are refunds paid?"})

    # the first piece at once (the question's line does not hold it back), the rest with the stored answer
    kinds = [event["event"] for _, event in timed]
    assert kinds[0] == "question" and kinds[-1] == "done" and set(kinds[1:-1]) == {"delta"}
    assert len(kinds) - 2 <= 2 < len(DEFAULT_REPLY.split(" "))
    deltas = [event for _, event in timed if event["event"] == "delta"]
    assert "".join(event["text"] for event in deltas) == DEFAULT_REPLY


def test_the_first_piece_goes_at_once_whatever_the_flush_interval(
    sam: Any, conversation: Any, fake_model: Any, fake_provider: Any, settings: Any
):
    settings.ASSISTANT_STREAM_FLUSH_MS = 60_000  # the question's line must not start this wait
    fake_provider.hold_stream(after_words=3)
    head = "".join(DEFAULT_REPLY.split(" ")[i] + " " for i in range(3))
    seen_while_held: list[str] = []

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "delta" and not seen_while_held:
            fake_provider.wait_until_held()
            seen_while_held.append(event["text"])
            fake_provider.release()

    post_streaming(sam, ask_url(conversation), {"question": "When are refunds paid?"}, on_event)

    assert seen_while_held and seen_while_held[0] and head.startswith(seen_while_held[0])


def test_a_reader_who_goes_away_mid_stream_leaves_the_answer_stored_as_stopped(
    sam: Any, conversation: Any, fake_model: Any, fake_provider: Any
):
    fake_provider.hold_stream(after_words=3)

    async def read_until_held_then_leave() -> str:
        client = AsyncClient()
        await client.aforce_login(sam)
        response = await client.post(ask_url(conversation), {"question": "When are refunds paid?"},
                                     headers={"accept": STREAM})  # fmt: skip
        seen: list[str] = []
        first_piece = asyncio.Event()

        async def read() -> None:
            async for chunk in streaming(response):
                for line in chunk.decode().splitlines():
                    event = json.loads(line)
                    if event["event"] == "delta":
                        seen.append(event["text"])
                        first_piece.set()

        reader = asyncio.ensure_future(read())
        await asyncio.wait_for(first_piece.wait(), 30)
        await asyncio.to_thread(fake_provider.wait_until_held)
        reader.cancel()  # what the server does when the reader's connection closes
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        fake_provider.release()
        return "".join(seen)

    seen = async_to_sync(read_until_held_then_leave)()

    answer = conversation.messages.get(role="assistant")
    assert answer.status == MessageStatus.STOPPED
    # what the reader saw, and at most the pieces still gathering for the next line
    assert seen and answer.content.startswith(seen) and DEFAULT_REPLY.startswith(answer.content)
