"""Router overhead: the portal's model call path against a direct litellm call, same endpoint, same run.

The endpoint is the evaluations' recording provider (`portal.bench.provider`, not tests/fakes: production code
does not import the test tree) answering a fixed text, streamed word by word, usage in the last chunk.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.db import transaction

from portal.bench.provider import recording_provider

BENCH_REPLY = "The refund is paid within fourteen days after the returned goods arrive at the warehouse [1]."
BENCH_KEY_VARIABLE = "PORTAL_BENCH_PROVIDER_KEY"


@contextmanager
def bench_provider() -> Iterator[str]:
    """A local OpenAI-style streaming endpoint answering BENCH_REPLY; yields its base URL (…/v1)."""
    with recording_provider(keep_bodies=False) as provider:
        provider.reply = lambda body: BENCH_REPLY
        yield provider.url


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
