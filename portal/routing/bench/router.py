"""Router overhead: the portal's model call path against a direct litellm call, same endpoint, same run.

The endpoint is a tiny local server speaking OpenAI's streaming chat completions, written here rather than
imported from tests/fakes: production code should not import the test tree, and the benchmark needs only
the happy path (fixed answer, streamed word by word, usage in the last chunk).
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.db import transaction

BENCH_REPLY = "The refund is paid within fourteen days after the returned goods arrive at the warehouse [1]."
BENCH_KEY_VARIABLE = "PORTAL_BENCH_PROVIDER_KEY"


class _StreamingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Small SSE writes on a kept-alive connection would otherwise meet Nagle + delayed ACK (~40 ms stalls)
    # and the benchmark would measure TCP, not the code paths.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep the benchmark quiet
        return

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        words = BENCH_REPLY.split(" ")
        usage = {"prompt_tokens": 40, "completion_tokens": len(words), "total_tokens": 40 + len(words)}
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(payload: str) -> None:
            data = f"data: {payload}\n\n".encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return json.dumps(
                {"id": "bench", "object": "chat.completion.chunk", "created": 0, "model": body.get("model", "bench"),
                 "choices": [choice], **extra}
            )  # fmt: skip

        send(chunk({"role": "assistant", "content": ""}))
        for index, word in enumerate(words):
            send(chunk({"content": word if index == len(words) - 1 else word + " "}))
        send(chunk({}, "stop", usage=usage))
        send("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


@contextmanager
def bench_provider() -> Iterator[str]:
    """A local OpenAI-style streaming endpoint; yields its base URL (…/v1)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StreamingHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="bench-provider", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95_index = max(0, min(len(ordered) - 1, round(0.95 * len(ordered)) - 1))
    return round(statistics.median(ordered), 2), round(ordered[p95_index], 2)


async def _time_interleaved(
    calls: dict[str, Callable[[], Awaitable[float | None]]], n: int, warmup: int
) -> dict[str, list[float]]:
    """Round-robin over the paths in one event loop, so drift in machine load hits all of them alike.

    Each call returns the perf_counter() of its first text piece: samples hold "<name>" (whole call) and
    "<name>_first" (time to first token), in milliseconds.
    """
    samples: dict[str, list[float]] = {}
    for index in range(warmup + n):
        for name, call in calls.items():
            started = time.perf_counter()
            first_at = await call()
            ended = time.perf_counter()
            if index >= warmup and first_at is not None:
                samples.setdefault(name, []).append((ended - started) * 1000)
                samples.setdefault(f"{name}_first", []).append((first_at - started) * 1000)
    return samples


def router_overhead(n: int = 200, warmup: int = 10) -> dict[str, float]:
    """Time n streamed calls three ways against the same local endpoint, interleaving nothing else.

    - direct: `litellm.acompletion(stream=True)` with the same parameters (the floor);
    - router: litellm's Router alone (`router.acompletion`), as the portal configures it;
    - portal: `portal.routing.services.model_stream` (catalog read, seal check, Router, usage row and
      audit event written to the database).
    Database rows written by the benchmark are rolled back.
    """
    from governance.gate import GatedPrompt, _seal
    from portal.routing import router as routing_router
    from portal.routing.models import CatalogModel
    from portal.routing.selectors import deployment_from
    from portal.routing.services import model_stream
    from portal.routing.types import CallOutcome, RouteDecision

    os.environ[BENCH_KEY_VARIABLE] = "bench-key"
    messages = (
        {"role": "system", "content": "Answer from the passages and cite them."},
        {"role": "user", "content": "[1] Source: Refund policy\nRefunds are paid within 14 days of a return."},
        {"role": "user", "content": "How fast are refunds paid?"},
    )
    with bench_provider() as url, transaction.atomic():
        model = CatalogModel.objects.create(
            display_name="Benchmark endpoint", litellm_model="openai/bench-model", api_base=url,
            api_key_env=BENCH_KEY_VARIABLE, tier="standard", timeout_seconds=30,
        )  # fmt: skip
        user = get_user_model().objects.create(username=f"bench-{time.time_ns()}")
        deployment = deployment_from(model)
        destinations = (model.key,)
        gated = GatedPrompt(
            messages=messages, manifest={"gate": "benchmark"}, destinations=destinations,
            seal=_seal(messages, destinations),
        )  # fmt: skip
        decision = RouteDecision("routine", "standard", (model.destination(),), "benchmark")
        router = routing_router.router_cache.get([deployment], num_retries=1, retry_min_seconds=0)

        async def direct() -> float | None:
            text, first_at = await routing_router.direct_stream(deployment, messages=[dict(m) for m in messages])
            assert text, "the benchmark endpoint sent nothing"
            return first_at

        async def via_router() -> float | None:
            result = routing_router.AttemptResult()
            async for _ in routing_router.stream_attempt(
                router, deployment, messages=[dict(m) for m in messages], temperature=0.2, max_tokens=200,
                result=result,
            ):  # fmt: skip
                pass
            return result.first_token_at

        async def via_portal() -> float | None:
            outcome = None
            first_at = None
            async for item in model_stream(user=user, gated=gated, decision=decision):
                if isinstance(item, CallOutcome):
                    outcome = item
                elif first_at is None:
                    first_at = time.perf_counter()
            assert outcome is not None and outcome.outcome == "success", outcome
            return first_at

        samples = async_to_sync(_time_interleaved)(
            {"direct": direct, "router": via_router, "portal": via_portal}, n, warmup
        )
        transaction.set_rollback(True)
    direct_p50, direct_p95 = _percentiles(samples["direct"])
    router_p50, router_p95 = _percentiles(samples["router"])
    portal_p50, portal_p95 = _percentiles(samples["portal"])
    direct_first_p50, direct_first_p95 = _percentiles(samples["direct_first"])
    router_first_p50, router_first_p95 = _percentiles(samples["router_first"])
    portal_first_p50, portal_first_p95 = _percentiles(samples["portal_first"])
    return {
        "router_bench_calls": n,
        "direct_litellm_first_token_p50_ms": direct_first_p50,
        "direct_litellm_first_token_p95_ms": direct_first_p95,
        "litellm_router_first_token_p50_ms": router_first_p50,
        "litellm_router_first_token_p95_ms": router_first_p95,
        "portal_first_token_p50_ms": portal_first_p50,
        "portal_first_token_p95_ms": portal_first_p95,
        "router_overhead_first_token_p50_ms": round(portal_first_p50 - direct_first_p50, 2),
        "router_overhead_first_token_p95_ms": round(portal_first_p95 - direct_first_p95, 2),
        "direct_litellm_p50_ms": direct_p50,
        "direct_litellm_p95_ms": direct_p95,
        "litellm_router_p50_ms": router_p50,
        "litellm_router_p95_ms": router_p95,
        "portal_model_stream_p50_ms": portal_p50,
        "portal_model_stream_p95_ms": portal_p95,
        "router_overhead_p50_ms": round(portal_p50 - direct_p50, 2),
        "router_overhead_p95_ms": round(portal_p95 - direct_p95, 2),
        "litellm_router_only_overhead_p50_ms": round(router_p50 - direct_p50, 2),
    }
