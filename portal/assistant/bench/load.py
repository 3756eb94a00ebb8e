"""`bench_assistant --users N --think-seconds T --answer-seconds S`: staff at work, not a burst.

Each of N simulated staff asks a question, reads the answer as it streams (S seconds from the paced local
provider), thinks T seconds and asks again, for `duration` seconds, against uvicorn with W web worker
processes (the same command `manage.py run` starts). Their first questions are spread over one cycle (T + S),
so arrivals are steady rather than all at once (the burst case is bench.concurrent).

Figures (prefixed `users_w<W>_`):
- questions_per_s: questions answered per second over the measured window (the first cycle is the ramp and
  is not measured); offered_questions_per_s: N / (T + S + the measured mean overhead), what the users ask for;
- errors; overhead p50/p95/p99 (the portal's own time per question, from the stream's `done` timings);
  ttft_p95 (request sent to first piece of the answer, as a reader sees it);
- CPU per question: of each web process (user + system, from psutil) and of PostgreSQL (the portal's server:
  its postmaster and all its children, not other servers on the machine), over the window;
  predicted_questions_per_s: the cores divided by the CPU one question costs (web + database), the rate the
  machine could sustain if CPU were the only limit;
- vs_limit: questions_per_s / min(offered, predicted): 1.0 means the portal kept up with whichever bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings

from portal.assistant.bench import assistant as bench


@dataclass
class _Record:
    started: float
    finished: float = 0.0
    first_ms: float | None = None
    overhead_ms: float | None = None
    error: str = ""


@dataclass
class _Run:
    records: list[_Record] = field(default_factory=list)
    window: tuple[float, float] = (0.0, 0.0)
    cpu_before: dict[str, float] = field(default_factory=dict)
    cpu_after: dict[str, float] = field(default_factory=dict)
    load_average: float = 0.0


def percentile(samples: list[float], fraction: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return round(ordered[max(0, min(len(ordered) - 1, round(fraction * len(ordered)) - 1))], 2)


def cpu_seconds(server_pid: int, postmaster_pid: int | None) -> dict[str, float]:
    """CPU so far (user + system seconds) of each process of the web server (uvicorn's supervisor and its
    workers) and of each process of this portal's PostgreSQL server (its postmaster and every child: backends,
    checkpointer, io workers; not other servers on the machine). A backend that starts in the window counts
    from zero; the web server's pooled connections live through it."""
    import psutil

    def used(process: psutil.Process) -> float:
        times = process.cpu_times()
        return float(times.user + times.system)

    server = psutil.Process(server_pid)
    figures = {f"web:{server_pid}": used(server)}
    for child in server.children(recursive=True):
        try:
            if "resource_tracker" not in " ".join(child.cmdline()):
                figures[f"web:{child.pid}"] = used(child)
        except psutil.Error:
            continue
    if postmaster_pid is not None:
        with contextlib.suppress(psutil.Error):
            postmaster = psutil.Process(postmaster_pid)
            for process in [postmaster, *postmaster.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    figures[f"database:{process.pid}"] = used(process)
    return figures


def postmaster_pid() -> int | None:
    """The pid of this portal's PostgreSQL server (the parent of our backend); None if it is on another host."""
    import psutil
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        row = cursor.fetchone()
    try:
        parent = psutil.Process(int(row[0])).parent()
    except psutil.Error:
        return None
    return parent.pid if parent is not None else None


async def _one_question(client: Any, conversation_id: int, question: str) -> _Record:
    record = _Record(started=time.monotonic())
    try:
        path = f"/assistant/conversations/{conversation_id}/ask/"
        async with client.stream("POST", path, data={"question": question}) as response:
            if response.status_code != 200:
                record.error = f"HTTP {response.status_code}"
                return record
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                if event["event"] == "delta" and record.first_ms is None:
                    record.first_ms = (time.monotonic() - record.started) * 1000
                elif event["event"] == "done":
                    record.overhead_ms = float(event["timings"]["overhead_ms"])
                    if "chat-error" in event["html"]:
                        record.error = "error answer"
        if record.overhead_ms is None and not record.error:
            record.error = "stream ended without an answer"
    except Exception as error:  # noqa: BLE001 - counted, reported
        record.error = f"{type(error).__name__}: {error}"
    finally:
        record.finished = time.monotonic()
    return record


async def _staff(
    *, url: str, session: str, conversations: list[int], questions: list[str], think: float, answer: float,
    duration: float, server_pid: int, database_pid: int | None,
) -> _Run:  # fmt: skip
    import httpx

    csrf = "bench" + "x" * 27
    cookies = {settings.SESSION_COOKIE_NAME: session, settings.CSRF_COOKIE_NAME: csrf}
    headers = {"Accept": "application/x-ndjson", "X-CSRFToken": csrf, "Referer": url + "/"}
    users = len(conversations)
    limits = httpx.Limits(max_connections=users + 10, max_keepalive_connections=users + 10)
    cycle = think + answer
    run = _Run()
    rng = random.Random(3)
    began = time.monotonic()
    ramp_end = began + cycle
    end = began + cycle + duration
    run.window = (ramp_end, end)

    async def measure_cpu() -> None:
        await asyncio.sleep(max(0.0, ramp_end - time.monotonic()))
        run.cpu_before = cpu_seconds(server_pid, database_pid)
        await asyncio.sleep(max(0.0, end - time.monotonic()))
        run.cpu_after = cpu_seconds(server_pid, database_pid)
        run.load_average = os.getloadavg()[0]

    async with httpx.AsyncClient(base_url=url, cookies=cookies, headers=headers, timeout=300, limits=limits) as client:

        async def person(number: int) -> None:
            await asyncio.sleep(cycle * number / users)  # first questions spread over one cycle
            asked = 0
            while time.monotonic() < end:
                question = questions[(number + asked * users) % len(questions)]
                run.records.append(await _one_question(client, conversations[number], question))
                asked += 1
                # thinking time varies a little between people and questions (±20%), as reading does
                await asyncio.sleep(think * rng.uniform(0.8, 1.2))

        await asyncio.gather(measure_cpu(), *(person(number) for number in range(users)))
    return run


def staff_at_work(
    *, user: Any, profile: Any, users: int, think: float, answer: float, duration: float, web_workers: int,
    port: int | None, log_path: str,
) -> dict[str, Any]:  # fmt: skip
    from portal.assistant import services

    conversations = [services.conversation_create(actor=user, profile=profile).pk for _ in range(users)]
    questions = bench._questions(max(users * 4, 50), seed=5)
    session = bench._session_cookie(user)
    with bench.uvicorn_server(port, log_path, workers=web_workers) as (url, server_pid):
        warm = async_to_sync(_warm)(url, session, conversations[0], questions[0], web_workers)
        if warm:
            raise RuntimeError(f"warm-up question failed: {warm} (see {log_path})")
        run = async_to_sync(_staff)(
            url=url, session=session, conversations=conversations, questions=questions, think=think,
            answer=answer, duration=duration, server_pid=server_pid, database_pid=postmaster_pid(),
        )  # fmt: skip
    return _figures(run, users=users, think=think, answer=answer, web_workers=web_workers)


async def _warm(url: str, session: str, conversation_id: int, question: str, web_workers: int) -> str:
    """A few questions at once first, so every web process has loaded the embedding model."""
    import httpx

    csrf = "bench" + "x" * 27
    cookies = {settings.SESSION_COOKIE_NAME: session, settings.CSRF_COOKIE_NAME: csrf}
    headers = {"Accept": "application/x-ndjson", "X-CSRFToken": csrf, "Referer": url + "/"}
    async with httpx.AsyncClient(base_url=url, cookies=cookies, headers=headers, timeout=300) as client:
        records = await asyncio.gather(
            *(_one_question(client, conversation_id, question) for _ in range(2 * web_workers))
        )
    return next((record.error for record in records if record.error), "")


def _figures(run: _Run, *, users: int, think: float, answer: float, web_workers: int) -> dict[str, Any]:
    start, end = run.window
    measured = [record for record in run.records if start <= record.finished <= end]
    errors = [record.error for record in run.records if record.error]
    overheads = [record.overhead_ms for record in measured if record.overhead_ms is not None]
    firsts = [record.first_ms for record in measured if record.first_ms is not None]
    answered = [record for record in measured if not record.error]
    rate = len(answered) / max(1e-9, end - start)
    mean_overhead = sum(overheads) / len(overheads) / 1000 if overheads else 0.0
    offered = users / (think + answer + mean_overhead)
    prefix = f"users_w{web_workers}_"
    figures: dict[str, Any] = {
        f"{prefix}users": users,
        f"{prefix}think_seconds": think,
        f"{prefix}answer_seconds": answer,
        f"{prefix}web_workers": web_workers,
        f"{prefix}window_seconds": round(end - start, 1),
        f"{prefix}questions": len(run.records),
        f"{prefix}errors": len(errors),
        f"{prefix}questions_per_s": round(rate, 2),
        f"{prefix}offered_questions_per_s": round(offered, 2),
        f"{prefix}overhead_p50_ms": percentile(overheads, 0.50),
        f"{prefix}overhead_p95_ms": percentile(overheads, 0.95),
        f"{prefix}overhead_p99_ms": percentile(overheads, 0.99),
        f"{prefix}ttft_p50_ms": percentile(firsts, 0.50),
        f"{prefix}ttft_p95_ms": percentile(firsts, 0.95),
    }
    count = max(1, len(answered))
    web_total = 0.0
    for name, after in sorted(run.cpu_after.items()):
        if not name.startswith("web:") or name not in run.cpu_before:
            continue
        per_question = (after - run.cpu_before[name]) * 1000 / count
        web_total += per_question
        if per_question >= 0.5:  # uvicorn's supervisor uses next to nothing: only the serving processes
            figures[f"{prefix}web_cpu_ms_per_question_pid{name[4:]}"] = round(per_question, 1)
    database_seconds = sum(
        after - run.cpu_before.get(name, 0.0) for name, after in run.cpu_after.items() if name.startswith("database:")
    )
    database_ms = database_seconds * 1000 / count
    figures[f"{prefix}web_cpu_ms_per_question"] = round(web_total, 1)
    figures[f"{prefix}database_cpu_ms_per_question"] = round(database_ms, 1)
    cores = len(os.sched_getaffinity(0))
    predicted = cores * 1000 / max(1.0, web_total + database_ms)
    figures[f"{prefix}predicted_questions_per_s"] = round(predicted, 1)
    figures[f"{prefix}vs_limit"] = round(rate / max(1e-9, min(offered, predicted)), 2)
    # the prediction assumes the cores are the portal's: a machine busy with other work sustains less
    figures[f"{prefix}load_average_1m"] = round(run.load_average, 1)
    if errors:
        figures[f"{prefix}first_error"] = errors[0]
    return figures
