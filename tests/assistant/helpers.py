from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync

from portal.assistant import services


def run_answer(**kwargs: Any) -> list[services.AnswerEvent]:
    async def collect() -> list[services.AnswerEvent]:
        return [event async for event in services.answer(**kwargs)]

    return async_to_sync(collect)()


def streamed_text(events: list[services.AnswerEvent]) -> str:
    text = ""
    for event in events:
        if isinstance(event, services.AnswerDelta):
            text = "" if event.reset else text + event.text
    return text


def stored_answer(events: list[services.AnswerEvent]) -> Any:
    last = events[-1]
    assert isinstance(last, services.AnswerStored), events
    return last.message
