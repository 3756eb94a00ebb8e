"""The floor for the web process's CPU per answer: a bare `litellm.acompletion` stream of the same answer.

Run by `bench_assistant` as a child process (`python -m portal.assistant.bench.bare_litellm URL STREAMS`), so
that neither the benchmark's provider thread nor its own start-up counts: after one warm-up stream it runs
STREAMS streams at once against the same paced provider the web process was measured against (the same
answer, the same pieces) and prints one JSON object with the process's CPU (user + system, every thread)
per answer. It calls litellm through `portal.routing.router.direct_stream` (the one module that imports
litellm), with the catalog model's parameters.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

PROMPT_CHARS = 3000  # about the size of the assistant's prompt (instructions, six passages, question)


def _messages() -> list[dict[str, str]]:
    passage = "Refunds are paid within fourteen days after the returned goods arrive at the warehouse. "
    body = (passage * (PROMPT_CHARS // len(passage) + 1))[:PROMPT_CHARS]
    return [
        {"role": "system", "content": "Answer from the numbered passages and cite them as [n]."},
        {"role": "user", "content": body},
        {"role": "user", "content": "How fast are refunds paid?"},
    ]


async def _run(url: str, streams: int, key_variable: str) -> dict[str, float]:
    from portal.routing.router import Deployment, direct_stream

    deployment = Deployment(
        key="bench", display_name="bench", provider="openai", litellm_model="openai/bench-model", api_base=url,
        api_key_env=key_variable, timeout_seconds=60,
    )  # fmt: skip

    async def one() -> None:
        text, _ = await direct_stream(deployment, messages=_messages(), max_tokens=300)
        if not text:
            raise RuntimeError("the provider sent nothing")

    await one()  # warm-up: litellm's lazy imports and its HTTP client for this loop
    before = time.process_time()
    await asyncio.gather(*(one() for _ in range(streams)))
    used = time.process_time() - before
    return {"bare_litellm_streams": streams, "bare_litellm_cpu_ms_per_answer": round(used * 1000 / streams, 1)}


def main() -> None:
    url, streams = sys.argv[1], int(sys.argv[2])
    key_variable = sys.argv[3] if len(sys.argv) > 3 else "PORTAL_ASSISTANT_BENCH_KEY"
    os.environ.setdefault(key_variable, "bench-key")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    print(json.dumps(asyncio.run(_run(url, streams, key_variable))))


if __name__ == "__main__":
    main()
