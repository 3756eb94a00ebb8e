from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync

from portal.assistant import pipeline


def run_answer(**kwargs: Any) -> list[pipeline.AnswerEvent]:
    async def collect() -> list[pipeline.AnswerEvent]:
        return [event async for event in pipeline.answer(**kwargs)]

    return async_to_sync(collect)()


def streamed_text(events: list[pipeline.AnswerEvent]) -> str:
    text = ""
    for event in events:
        if isinstance(event, pipeline.AnswerDelta):
            text = "" if event.reset else text + event.text
    return text


def stored_answer(events: list[pipeline.AnswerEvent]) -> Any:
    last = events[-1]
    assert isinstance(last, pipeline.AnswerStored), events
    return last.message
