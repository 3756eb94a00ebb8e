"""The fake provider speaks the wire protocols well enough for litellm, and misbehaves on request."""

from __future__ import annotations

from typing import Any

import httpx
import litellm
import pytest

MESSAGES = [{"role": "user", "content": "Say something about Ada Lovelace"}]


def _openai(fake: Any, **kwargs: Any) -> Any:
    return litellm.completion(
        model="openai/fake-model", api_base=fake.url, api_key="sk-test", messages=MESSAGES, num_retries=0, **kwargs
    )


def _anthropic(fake: Any, **kwargs: Any) -> Any:
    return litellm.completion(
        model="anthropic/claude-fake", api_base=fake.base_url, api_key="sk-ant-test", messages=MESSAGES,
        num_retries=0, **kwargs,
    )  # fmt: skip


def test_openai_protocol_without_streaming(fake_provider: Any) -> None:
    fake_provider.answer_with("Hello from the fake.")
    response = _openai(fake_provider)
    assert response.choices[0].message.content == "Hello from the fake."
    assert response.usage.completion_tokens == 4
    (recorded,) = fake_provider.requests
    assert recorded.protocol == "openai"
    assert recorded.body["messages"][0]["content"] == MESSAGES[0]["content"]
    assert recorded.headers["authorization"] == "Bearer sk-test"


def test_openai_protocol_streaming(fake_provider: Any) -> None:
    fake_provider.answer_with("one two three four")
    pieces = [chunk.choices[0].delta.content or "" for chunk in _openai(fake_provider, stream=True)]
    assert "".join(pieces) == "one two three four"
    assert len([p for p in pieces if p]) == 4


def test_anthropic_protocol_both_ways(fake_provider: Any) -> None:
    fake_provider.answer_with("Bonjour from Claude's stand-in.")
    assert _anthropic(fake_provider).choices[0].message.content == "Bonjour from Claude's stand-in."
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in _anthropic(fake_provider, stream=True))
    assert streamed == "Bonjour from Claude's stand-in."
    assert {r.protocol for r in fake_provider.requests} == {"anthropic"}
    assert fake_provider.requests[0].headers["x-api-key"] == "sk-ant-test"


def test_it_rate_limits_with_retry_after(fake_provider: Any) -> None:
    fake_provider.script("429")
    response = httpx.post(f"{fake_provider.url}/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    with pytest.raises(litellm.RateLimitError):
        fake_provider.script("429")
        _openai(fake_provider)


def test_it_fails_with_500(fake_provider: Any) -> None:
    fake_provider.script("500")
    with pytest.raises(litellm.InternalServerError):
        _openai(fake_provider)


def test_it_answers_malformed_json(fake_provider: Any) -> None:
    fake_provider.script("malformed")
    with pytest.raises((litellm.APIError, litellm.InternalServerError), match="Expecting value"):
        _openai(fake_provider)


def test_it_answers_slowly_past_a_timeout(fake_provider: Any) -> None:
    fake_provider.state.slow_seconds = 2.0
    fake_provider.script("slow")
    with pytest.raises(litellm.Timeout):
        _openai(fake_provider, timeout=0.5)


def test_it_cuts_the_stream(fake_provider: Any) -> None:
    fake_provider.answer_with("a b c d e f g h")
    fake_provider.script("disconnect")
    received = []
    with pytest.raises(Exception):  # noqa: B017 - litellm surfaces the cut as one of several errors
        for chunk in _openai(fake_provider, stream=True):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received).startswith("a b")
    assert "h" not in "".join(received)


def test_it_records_every_request_and_goes_back_to_normal(fake_provider: Any) -> None:
    fake_provider.script("500")
    with pytest.raises(litellm.InternalServerError):
        _openai(fake_provider)
    assert _openai(fake_provider).choices[0].message.content
    assert len(fake_provider.requests) == 2
