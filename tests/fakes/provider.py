"""A fake model provider: a real HTTP server on 127.0.0.1 that speaks the wire protocols litellm uses.

Speaks OpenAI chat completions (`POST /v1/chat/completions`, JSON and server-sent events) and Anthropic
messages (`POST /v1/messages`, JSON and its event stream). Every request body is recorded. A test can
script the next responses: "ok", "slow", "429", "500", "malformed", "disconnect".

Pauses are under the test's control, not timed: `hold_stream(after_words=3)` makes the next streamed
answers stop after three words until the test calls `release()` (`wait_until_held()` tells when a stream
has got there), and a "slow" answer waits until `reset()` lets it go (`slow_seconds` is only a ceiling),
long after the client's timeout.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_REPLY = "This is the fake provider's answer. It cites nothing and knows nothing."
MODES = frozenset({"ok", "slow", "429", "500", "malformed", "disconnect"})
HOLD_CEILING_SECONDS = 120.0  # a held stream goes on by itself after this, so a failed test never hangs


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]  # names in lower case
    body: dict[str, Any]
    raw: bytes
    protocol: str  # "openai" or "anthropic"

    @property
    def text(self) -> str:
        """Everything the client sent, as one string (for 'does value X appear anywhere' checks)."""
        return self.raw.decode("utf-8", errors="replace")


@dataclass
class FakeProviderState:
    requests: list[RecordedRequest] = field(default_factory=list)
    script: deque[str] = field(default_factory=deque)
    reply: Callable[[dict[str, Any]], str] = lambda body: DEFAULT_REPLY
    slow_seconds: float = 3.0  # the most a "slow" answer waits (reset() lets it go at once)
    chunk_delay: float = 0.0
    retry_after: int = 1
    lock: threading.Lock = field(default_factory=threading.Lock)
    hold_after_words: int | None = None
    held: threading.Event = field(default_factory=threading.Event)  # a stream is waiting at the hold
    released: threading.Event = field(default_factory=threading.Event)
    unstalled: threading.Event = field(default_factory=threading.Event)  # lets "slow" answers go

    def hold_point(self, words_sent: int) -> None:
        """Called after each streamed word: wait here while the test holds the stream."""
        if self.hold_after_words is not None and words_sent == self.hold_after_words:
            released = self.released
            self.held.set()
            released.wait(HOLD_CEILING_SECONDS)

    def next_mode(self) -> str:
        with self.lock:
            return self.script.popleft() if self.script else "ok"


def _words(text: str) -> Iterator[str]:
    pieces = text.split(" ")
    for index, piece in enumerate(pieces):
        yield piece if index == len(pieces) - 1 else piece + " "


def _count_tokens(text: str) -> int:
    return max(1, len(text.split()))


class _Handler(BaseHTTPRequestHandler):
    server: _FakeHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet server
        return

    # ---- plumbing
    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        # chunked, as real providers stream: a cut connection is then a detectable protocol error
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _sse(self, data: str, event: str | None = None) -> None:
        message = ((f"event: {event}\n" if event else "") + f"data: {data}\n\n").encode()
        self.wfile.write(f"{len(message):x}\r\n".encode() + message + b"\r\n")
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _abort(self) -> None:
        """Drop the connection in the middle of the body, without the final chunk."""
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(2)

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self._send_json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
        else:
            self._send_json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send_json(400, {"error": {"message": "request body is not JSON"}})
            return
        path = self.path.split("?")[0].rstrip("/")
        if path.endswith("/chat/completions"):
            protocol = "openai"
        elif path.endswith("/messages"):
            protocol = "anthropic"
        else:
            self._send_json(404, {"error": {"message": f"unknown path {self.path}"}})
            return
        state = self.server.state
        with state.lock:
            headers = {name.lower(): value for name, value in self.headers.items()}
            state.requests.append(RecordedRequest(self.path, headers, body, raw, protocol))
        mode = state.next_mode()
        if mode == "429":
            self._send_json(
                429,
                {"error": {"message": "rate limited by the fake provider", "type": "rate_limit_error"}},
                {"Retry-After": str(state.retry_after)},
            )
            return
        if mode == "500":
            self._send_json(500, {"error": {"message": "the fake provider failed", "type": "server_error"}})
            return
        if mode == "malformed":
            data = b'{"id": "broken", "choices": [ this is not json'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if mode == "slow":
            state.unstalled.wait(state.slow_seconds)
        text = state.reply(body)
        stream = bool(body.get("stream"))
        if protocol == "openai":
            self._openai(body, text, stream, mode)
        else:
            self._anthropic(body, text, stream, mode)

    # ---- OpenAI chat completions
    def _openai(self, body: dict[str, Any], text: str, stream: bool, mode: str) -> None:
        model = body.get("model", "fake-model")
        prompt_text = json.dumps(body.get("messages", []))
        usage = {
            "prompt_tokens": _count_tokens(prompt_text),
            "completion_tokens": _count_tokens(text),
            "total_tokens": _count_tokens(prompt_text) + _count_tokens(text),
        }
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        created = int(time.time())
        if not stream:
            self._send_json(
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    ],
                    "usage": usage,
                },
            )
            return
        self._start_stream()

        def chunk(delta: dict[str, Any], finish: str | None = None, with_usage: bool = False) -> str:
            payload: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if with_usage:
                payload["usage"] = usage
            return json.dumps(payload)

        self._sse(chunk({"role": "assistant", "content": ""}))
        for index, word in enumerate(_words(text)):
            if mode == "disconnect" and index == 2:
                self._abort()
                return
            self._sse(chunk({"content": word}))
            self.server.state.hold_point(index + 1)
            if self.server.state.chunk_delay:
                time.sleep(self.server.state.chunk_delay)
        self._sse(chunk({}, finish="stop", with_usage=True))
        self._sse("[DONE]")
        self._end_stream()

    # ---- Anthropic messages
    def _anthropic(self, body: dict[str, Any], text: str, stream: bool, mode: str) -> None:
        model = body.get("model", "fake-claude")
        input_tokens = _count_tokens(json.dumps(body.get("messages", [])) + str(body.get("system", "")))
        output_tokens = _count_tokens(text)
        message_id = f"msg_{uuid.uuid4().hex[:12]}"
        if not stream:
            self._send_json(
                200,
                {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
                },
            )
            return
        self._start_stream()
        start = {
            "type": "message_start",
            "message": {
                "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": 1},
            },
        }  # fmt: skip
        self._sse(json.dumps(start), event="message_start")
        block_start = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
        self._sse(json.dumps(block_start), event="content_block_start")
        for index, word in enumerate(_words(text)):
            if mode == "disconnect" and index == 2:
                self._abort()
                return
            delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}}
            self._sse(json.dumps(delta), event="content_block_delta")
            self.server.state.hold_point(index + 1)
            if self.server.state.chunk_delay:
                time.sleep(self.server.state.chunk_delay)
        self._sse(json.dumps({"type": "content_block_stop", "index": 0}), event="content_block_stop")
        message_delta = {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": output_tokens},
        }
        self._sse(json.dumps(message_delta), event="message_delta")
        self._sse(json.dumps({"type": "message_stop"}), event="message_stop")
        self._end_stream()


class _FakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    state: FakeProviderState

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], OSError):
            return  # a connection we cut on purpose, or a client that gave up: expected here
        super().handle_error(request, client_address)


class FakeProvider:
    """Start with `FakeProvider().start()`; `url` is the OpenAI-style base (…/v1)."""

    def __init__(self) -> None:
        self._server = _FakeHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.state = FakeProviderState()
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-provider", daemon=True)

    @property
    def state(self) -> FakeProviderState:
        return self._server.state

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        return list(self.state.requests)

    def start(self) -> FakeProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        with self.state.lock:
            self.state.requests.clear()
            self.state.script.clear()
        self.state.reply = lambda body: DEFAULT_REPLY
        self.state.chunk_delay = 0.0
        self.release()
        # answers still waiting in "slow" (for clients that gave up) go now, not after slow_seconds
        stalled, self.state.unstalled = self.state.unstalled, threading.Event()
        stalled.set()

    def hold_stream(self, *, after_words: int) -> None:
        """Streamed answers stop after `after_words` words until release()."""
        self.state.held = threading.Event()
        self.state.released = threading.Event()
        self.state.hold_after_words = after_words

    def wait_until_held(self, timeout: float = HOLD_CEILING_SECONDS) -> None:
        """Block until a stream waits at the hold; fail the test if none gets there in time."""
        if not self.state.held.wait(timeout):
            raise AssertionError(f"no stream reached the hold within {timeout} s")

    def release(self) -> None:
        self.state.hold_after_words = None
        self.state.released.set()

    def script(self, *modes: str) -> None:
        unknown = set(modes) - MODES
        if unknown:
            raise ValueError(f"unknown fake provider modes: {sorted(unknown)}")
        with self.state.lock:
            self.state.script.extend(modes)

    def answer_with(self, reply: str | Callable[[dict[str, Any]], str]) -> None:
        self.state.reply = reply if callable(reply) else (lambda body: reply)
