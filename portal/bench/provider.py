"""A recording model provider on 127.0.0.1: it speaks OpenAI chat completions (JSON and streamed), keeps
every request body, and answers with what `reply(body)` returns, streamed a word at a time (so a placeholder
may arrive cut in two, as from a real model)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = Callable[[dict[str, Any]], str]


class RecordingProvider:
    def __init__(self, *, keep_bodies: bool = True) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.keep_bodies = keep_bodies  # off for benchmarks, which only need the answers
        self.reply: Reply = lambda body: "Noted."
        self.lock = threading.Lock()
        self.url = ""

    def take(self) -> list[dict[str, Any]]:
        """The bodies received since the last call."""
        with self.lock:
            bodies, self.bodies = self.bodies, []
        return bodies


def _handler(provider: RecordingProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Small SSE writes on a kept-alive connection would otherwise meet Nagle + delayed ACK (~40 ms stalls),
        # and a benchmark would measure TCP, not the code paths.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            return

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            if provider.keep_bodies:
                with provider.lock:
                    provider.bodies.append(body)
            text = provider.reply(body)
            usage = {"prompt_tokens": 100, "completion_tokens": len(text.split()), "total_tokens": 100}
            if not body.get("stream"):
                message = {"role": "assistant", "content": text}
                choice = {"index": 0, "message": message, "finish_reason": "stop"}
                payload = {"id": "eval", "object": "chat.completion", "created": 0,
                           "model": body.get("model", "eval"), "choices": [choice], "usage": usage}  # fmt: skip
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def send(data: str) -> None:
                event = f"data: {data}\n\n".encode()
                self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")

            def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
                choice = {"index": 0, "delta": delta, "finish_reason": finish}
                return json.dumps({"id": "eval", "object": "chat.completion.chunk", "created": 0,
                                   "model": body.get("model", "eval"), "choices": [choice], **extra})  # fmt: skip

            send(chunk({"role": "assistant", "content": ""}))
            words = text.split(" ")
            for index, word in enumerate(words):
                send(chunk({"content": word if index == len(words) - 1 else word + " "}))
            send(chunk({}, "stop", usage=usage))
            send("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler


@contextmanager
def recording_provider(*, keep_bodies: bool = True) -> Iterator[RecordingProvider]:
    provider = RecordingProvider(keep_bodies=keep_bodies)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="eval-provider", daemon=True)
    thread.start()
    provider.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
