"""`manage.py bench_assistant`: the local cost of one question, alone and with many streams at once.

Figures:
- overhead of one question at N chunks (default 100k): everything the portal does for a question except
  the time spent inside the model call (authorize, route, embed + hybrid search, build, gate, restore,
  store, audit), measured by `pipeline.answer()` itself; plus the whole question end to end against an
  instant local provider (an upper bound that also counts routing's and litellm's own work).
- concurrency: N simultaneous streamed questions through uvicorn (a subprocess, as in production) against
  a local provider that streams each answer over 2 s; errors, and the same overhead figure under load.
- router overhead against a direct litellm call (portal.routing.bench.router.router_overhead).

The synthetic corpus (random unit vectors, random words) lives in a knowledge base named BENCH_KB_NAME,
built with bulk inserts and deleted at the end (unless --keep). Run it on its own database:
`PORTAL_DB_NAME=portal_assistant_bench manage.py bench_assistant`.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import secrets
import socket
import statistics
import string
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import Group, User
from django.db import connection, transaction

BENCH_KB_NAME = "Assistant benchmark: synthetic chunks (temporary)"
BENCH_PROFILE_NAME = "Assistant benchmark profile (temporary)"
BENCH_USERNAME = "assistant-bench"
BENCH_KEY_VARIABLE = "PORTAL_ASSISTANT_BENCH_KEY"
CHUNKS_PER_DOCUMENT = 100
WORDS_PER_CHUNK = 24
VOCABULARY_SIZE = 5000
REPLY = "Refunds are paid within fourteen days after the returned goods arrive at the warehouse [1]. " * 2
QUESTION_WORDS = 6


def _vocabulary(rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < VOCABULARY_SIZE:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(4, 9))))
    return sorted(words)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[max(0, min(len(ordered) - 1, round(0.95 * len(ordered)) - 1))]
    return round(statistics.median(ordered), 2), round(p95, 2)


# ---- the synthetic corpus -------------------------------------------------------------------------------
def corpus_ensure(*, chunks: int, log: Any) -> Any:
    """The benchmark knowledge base with exactly `chunks` searchable chunks (built once, reused if present)."""
    from knowledge.models import Chunk, Document, DocumentStatus, KnowledgeBase
    from knowledge.services import _lexical_statistics_lock, _statistics_apply, postings_build

    existing = KnowledgeBase.objects.filter(name=BENCH_KB_NAME).first()
    if existing is not None:
        if Chunk.objects.filter(knowledge_base=existing).count() == chunks:
            return existing
        corpus_delete(log=log)
    rng = random.Random(20261126)
    vectors = np.random.default_rng(20261126)
    vocabulary = _vocabulary(rng)
    started = time.perf_counter()
    knowledge_base = KnowledgeBase.objects.create(name=BENCH_KB_NAME, description="Synthetic; safe to delete.")
    documents = Document.objects.bulk_create(
        [
            Document(
                knowledge_base=knowledge_base, title=f"Synthetic document {index}", original_filename=f"{index}.txt",
                sha256=f"{index:064x}", status=DocumentStatus.READY, generation=1, active_generation=1,
                chunk_count=CHUNKS_PER_DOCUMENT,
            )
            for index in range((chunks + CHUNKS_PER_DOCUMENT - 1) // CHUNKS_PER_DOCUMENT)
        ]
    )  # fmt: skip
    batch = 5000
    for start in range(0, chunks, batch):
        count = min(batch, chunks - start)
        matrix = vectors.standard_normal((count, 384)).astype(np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        rows = []
        for offset in range(count):
            number = start + offset
            rows.append(
                Chunk(
                    document=documents[number // CHUNKS_PER_DOCUMENT], knowledge_base=knowledge_base, generation=1,
                    position=number % CHUNKS_PER_DOCUMENT,
                    text=" ".join(rng.choice(vocabulary) for _ in range(WORDS_PER_CHUNK)),
                    page_number=(number % 7) + 1, token_count=WORDS_PER_CHUNK, embedding=matrix[offset],
                    # BM25 length set at insert: an UPDATE afterwards would rewrite every row and its HNSW entry
                    lexical_length=WORDS_PER_CHUNK,
                )
            )  # fmt: skip
        Chunk.objects.bulk_create(rows, batch_size=1000)
        log(f"  chunks: {start + count}/{chunks}")
    postings_build("c.knowledge_base_id = %s", [knowledge_base.pk])
    with transaction.atomic():
        _lexical_statistics_lock()
        _statistics_apply("c.knowledge_base_id = %s", [knowledge_base.pk], 1)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE knowledge_chunk")
        cursor.execute("ANALYZE knowledge_posting")
    log(f"  corpus built in {time.perf_counter() - started:.0f} s")
    return knowledge_base


def corpus_delete(*, log: Any) -> None:
    from knowledge.models import KnowledgeBase

    for knowledge_base in KnowledgeBase.objects.filter(name=BENCH_KB_NAME):
        # its BM25 statistics are kept per knowledge base and go with it
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "DELETE FROM knowledge_posting p USING knowledge_chunk c "
                    "WHERE c.id = p.chunk_id AND c.knowledge_base_id = %s",
                    [knowledge_base.pk],
                )
            knowledge_base.delete()
    log("  benchmark corpus deleted")


# ---- the benchmark's user, profile and model ---------------------------------------------------------------
def actors_ensure(*, knowledge_base: Any, provider_url: str) -> tuple[User, Any, Any]:
    from portal.routing.models import CatalogModel
    from portal.routing.selectors import task_tiers

    user, profile = user_and_profile_ensure(knowledge_base=knowledge_base)
    CatalogModel.objects.filter(display_name="Assistant benchmark endpoint").delete()
    model = CatalogModel.objects.create(
        display_name="Assistant benchmark endpoint", litellm_model="openai/bench-model", api_base=provider_url,
        api_key_env=BENCH_KEY_VARIABLE, tier=task_tiers()["routine"], timeout_seconds=60, order=0,
    )  # fmt: skip
    return user, profile, model


def user_and_profile_ensure(*, knowledge_base: Any) -> tuple[User, Any]:
    """The benchmark's staff user and a profile over `knowledge_base` it may use (no model: see actors_ensure)."""
    from guardian.shortcuts import assign_perm

    from portal.assistant.models import AssistantProfile

    user, _ = User.objects.get_or_create(username=BENCH_USERNAME, defaults={"email": "bench@invalid"})
    user.groups.add(Group.objects.get(name="Staff"))
    assign_perm("knowledge.view_knowledgebase", user, knowledge_base)
    profile, _ = AssistantProfile.objects.get_or_create(
        name=BENCH_PROFILE_NAME, defaults={"task_type": "routine", "passages": 6, "max_tokens": 300}
    )
    profile.knowledge_bases.set([knowledge_base])
    assign_perm("assistant.use_assistantprofile", user, profile)
    return user, profile


def actors_delete() -> None:
    from portal.assistant.models import AssistantProfile, Conversation
    from portal.routing.models import CatalogModel

    Conversation.objects.filter(profile__name=BENCH_PROFILE_NAME).delete()
    AssistantProfile.objects.filter(name=BENCH_PROFILE_NAME).delete()
    CatalogModel.objects.filter(display_name="Assistant benchmark endpoint").delete()
    User.objects.filter(username=BENCH_USERNAME).delete()


# ---- a local provider that streams each answer over a chosen time ----------------------------------------
class _PacedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    stream_seconds = 0.0

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        return

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        words = REPLY.strip().split(" ")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(payload: str) -> None:
            data = f"data: {payload}\n\n".encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            payload = {"id": "bench", "object": "chat.completion.chunk", "created": 0, "choices": [choice]}
            return json.dumps({**payload, "model": body.get("model", "bench"), **extra})

        pause = self.stream_seconds / len(words)
        send(chunk({"role": "assistant", "content": ""}))
        for index, word in enumerate(words):
            send(chunk({"content": word if index == len(words) - 1 else word + " "}))
            if pause:
                time.sleep(pause)
        usage = {"prompt_tokens": 300, "completion_tokens": len(words), "total_tokens": 300 + len(words)}
        send(chunk({}, "stop", usage=usage))
        send("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


@contextmanager
def paced_provider(stream_seconds: float) -> Iterator[str]:
    handler = type("Handler", (_PacedHandler,), {"stream_seconds": stream_seconds})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.request_queue_size = 1024
    thread = threading.Thread(target=server.serve_forever, name="bench-provider", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _questions(count: int, seed: int) -> list[str]:
    from knowledge.models import Chunk

    rng = random.Random(seed)
    texts = list(
        Chunk.objects.filter(knowledge_base__name=BENCH_KB_NAME).order_by("?").values_list("text", flat=True)[:count]
    )
    return [
        "What does the handbook say about " + " ".join(rng.sample(text.split(), QUESTION_WORDS)) + "?" for text in texts
    ]


# ---- single user, in process -------------------------------------------------------------------------------
def single_user(*, user: User, profile: Any, questions: int, warmup: int, floor: bool = False) -> dict[str, Any]:
    """One user's questions through the pipeline, one after another, with an instant provider.

    `floor`: also the floor (see floor_sample), one sample after each question, on a question of its own
    drawn the same way: both then see the same caches and the same load on this shared machine, and
    `single_overhead_p95_vs_floor` compares them."""
    from portal.assistant import pipeline, services

    overheads: list[float] = []
    totals: list[float] = []
    prepares: list[float] = []
    floors: list[float] = []
    stages: dict[str, list[float]] = {}
    asked = _questions(2 * (questions + warmup), seed=1)
    knowledge_base_ids = list(profile.knowledge_bases.values_list("pk", flat=True))
    for index in range(questions + warmup):
        if index == warmup:
            # as a web process does once it has warmed up (portal.readiness): what is loaded by now lives as
            # long as the process, out of the collector's reach
            gc.freeze()
        question, floor_question = asked[2 * index], asked[2 * index + 1]
        conversation = services.conversation_create(actor=user, profile=profile)
        timings: dict[str, float] = {}

        async def ask(conversation: Any = conversation, question: str = question) -> dict[str, float]:
            async for event in pipeline.answer(user=user, conversation=conversation, question=question):
                if isinstance(event, pipeline.AnswerStored):
                    assert event.message.status == "complete", event.message.error
                    return event.timings
            raise AssertionError("no answer stored")

        timings = async_to_sync(ask)()
        floor_ms = 0.0
        if floor:
            floor_ms = floor_sample(user=user, knowledge_base_ids=knowledge_base_ids, question=floor_question)
        if index >= warmup:
            overheads.append(timings["overhead_ms"])
            totals.append(timings["total_ms"])
            prepares.append(timings["prepare_ms"])
            floors.append(floor_ms)
            for name, value in timings.items():
                if name.startswith("stage_"):
                    stages.setdefault(name, []).append(value)
    overhead_p50, overhead_p95 = percentiles(overheads)
    total_p50, total_p95 = percentiles(totals)
    prepare_p50, prepare_p95 = percentiles(prepares)
    figures = {
        "single_questions": len(overheads),
        "single_overhead_p50_ms": overhead_p50,
        "single_overhead_p95_ms": overhead_p95,
        "single_prepare_p50_ms": prepare_p50,
        "single_prepare_p95_ms": prepare_p95,
        "single_total_instant_provider_p50_ms": total_p50,
        "single_total_instant_provider_p95_ms": total_p95,
        **{f"single_{name.removesuffix('_ms')}_p50_ms": percentiles(values)[0] for name, values in stages.items()},
    }
    if floor:
        floor_p50, floor_p95 = percentiles(floors)
        figures.update(single_floor_p50_ms=floor_p50, single_floor_p95_ms=floor_p95)
        figures["single_overhead_p95_vs_floor"] = round(overhead_p95 / max(floor_p95, 1e-9), 2)
    return figures


def floor_sample(*, user: User, knowledge_base_ids: list[int], question: str, passages: int = 6) -> float:
    """The bare work a question cannot avoid, timed alone (milliseconds): embedding it with the raw model (no
    cache), the hybrid search SQL over the profile's bases with the user's permission filter, and one audit
    INSERT and COMMIT."""
    from audit.services import audit
    from knowledge import embeddings, search

    started = time.perf_counter()
    vector = embeddings.embed_query(question, cache=False)
    search.hybrid_search(question, search.acl_for(user, knowledge_base_ids), passages, query_vector=vector)
    with transaction.atomic():  # the benchmark's scratch trail: one event, as a question's store writes
        audit(actor=user, action="assistant.question_asked", details={"benchmark": "floor"})
    return (time.perf_counter() - started) * 1000


def single_floor(*, user: User, profile: Any, questions: int, warmup: int, passages: int = 6) -> dict[str, Any]:
    """The floor alone (floor_sample on each of `questions` questions, after `warmup` unmeasured ones)."""
    knowledge_base_ids = list(profile.knowledge_bases.values_list("pk", flat=True))
    samples = [
        floor_sample(user=user, knowledge_base_ids=knowledge_base_ids, question=question, passages=passages)
        for question in _questions(questions + warmup, seed=1)
    ][warmup:]
    floor_p50, floor_p95 = percentiles(samples)
    return {"single_floor_p50_ms": floor_p50, "single_floor_p95_ms": floor_p95}


# ---- many users, through uvicorn -------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _session_cookie(user: User) -> str:
    from importlib import import_module

    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "portal.accounts.backends.PasswordBackend"  # one of AUTHENTICATION_BACKENDS
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return str(store.session_key)


@contextmanager
def uvicorn_server(port: int | None, log_path: str, *, workers: int = 1) -> Iterator[tuple[str, int]]:
    import httpx

    port = port or _free_port()
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="portal.settings", PORTAL_DEBUG="0")
    env["PORTAL_DB_NAME"] = str(connection.settings_dict["NAME"])
    env.setdefault(BENCH_KEY_VARIABLE, "bench-key")
    command = [
        sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1", "--port", str(port),
        "--lifespan", "off", "--log-level", "warning", "--backlog", "2048", "--timeout-keep-alive", "30",
        "--workers", str(workers), "--timeout-worker-healthcheck", "120",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=settings.BASE_DIR)
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(timeout=2) as client:
                for _ in range(600):
                    if server.poll() is not None:
                        raise RuntimeError(f"uvicorn exited; see {log_path}")
                    try:
                        if client.get(url + "/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.1)
                else:
                    raise RuntimeError("uvicorn did not start")
            yield url, server.pid
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()


async def _drive(url: str, jobs: list[tuple[int, str]], session: str, ramp_seconds: float) -> dict[str, Any]:
    import httpx

    csrf = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
    cookies = {settings.SESSION_COOKIE_NAME: session, settings.CSRF_COOKIE_NAME: csrf}
    headers = {"Accept": "application/x-ndjson", "X-CSRFToken": csrf, "Referer": url + "/"}
    in_flight = 0
    peak = 0
    results: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=len(jobs) + 10, max_keepalive_connections=len(jobs) + 10)

    async with httpx.AsyncClient(base_url=url, cookies=cookies, headers=headers, timeout=120, limits=limits) as client:

        async def one(index: int, conversation_id: int, question: str) -> None:
            nonlocal in_flight, peak
            await asyncio.sleep(ramp_seconds * index / max(1, len(jobs)))
            started = time.perf_counter()
            record: dict[str, Any] = {"error": ""}
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                path = f"/assistant/conversations/{conversation_id}/ask/"
                async with client.stream("POST", path, data={"question": question}) as response:
                    if response.status_code != 200:
                        record["error"] = f"HTTP {response.status_code}"
                        return
                    async for line in response.aiter_lines():
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        if event["event"] == "delta" and "first_ms" not in record:
                            record["first_ms"] = (time.perf_counter() - started) * 1000
                        elif event["event"] == "done":
                            record["timings"] = event["timings"]
                            if "chat-error" in event["html"]:
                                record["error"] = "error answer"
                if "timings" not in record and not record["error"]:
                    record["error"] = "stream ended without an answer"
            except Exception as error:  # noqa: BLE001 - counted, reported
                record["error"] = f"{type(error).__name__}: {error}"
            finally:
                in_flight -= 1
                record["total_ms"] = (time.perf_counter() - started) * 1000
                results.append(record)

        await asyncio.gather(*(one(index, cid, question) for index, (cid, question) in enumerate(jobs)))
    return {"results": results, "peak": peak}


def _cpu_seconds(server_pid: int) -> dict[str, float]:
    """CPU time used so far by the web server process and by PostgreSQL's processes (user + system)."""
    import psutil

    def used(process: psutil.Process) -> float:
        times = process.cpu_times()
        return float(times.user + times.system)

    web = used(psutil.Process(server_pid))
    database = 0.0
    for process in psutil.process_iter(["name"]):
        if process.info["name"] == "postgres":
            try:
                database += used(process)
            except psutil.Error:
                continue
    return {"web": web, "database": database}


def concurrent(
    *, user: User, profile: Any, streams: int, port: int | None, ramp_seconds: float, log_path: str
) -> dict[str, Any]:
    from portal.assistant import services

    conversations = [services.conversation_create(actor=user, profile=profile).pk for _ in range(streams + 1)]
    questions = _questions(streams + 1, seed=2)
    session = _session_cookie(user)
    with uvicorn_server(port, log_path) as (url, server_pid):
        # one question first: the server process loads the embedding model
        warm = async_to_sync(_drive)(url, [(conversations[-1], questions[-1])], session, 0.0)
        if warm["results"][0]["error"]:
            raise RuntimeError(f"warm-up question failed: {warm['results'][0]['error']} (see {log_path})")
        jobs = list(zip(conversations[:streams], questions[:streams], strict=True))
        cpu_before = _cpu_seconds(server_pid)
        driven = async_to_sync(_drive)(url, jobs, session, ramp_seconds)
        cpu_after = _cpu_seconds(server_pid)
    results = driven["results"]
    errors = [record["error"] for record in results if record["error"]]
    overheads = [record["timings"]["overhead_ms"] for record in results if "timings" in record]
    firsts = [record["first_ms"] for record in results if "first_ms" in record]
    overhead_p50, overhead_p95 = percentiles(overheads or [0.0])
    first_p50, first_p95 = percentiles(firsts or [0.0])
    total_p50, total_p95 = percentiles([record["total_ms"] for record in results])
    figures: dict[str, Any] = {
        "concurrent_streams": streams,
        "concurrent_peak_in_flight": driven["peak"],
        "concurrent_errors": len(errors),
        "concurrent_overhead_p50_ms": overhead_p50,
        "concurrent_overhead_p95_ms": overhead_p95,
        "concurrent_first_token_p50_ms": first_p50,
        "concurrent_first_token_p95_ms": first_p95,
        "concurrent_total_p50_ms": total_p50,
        "concurrent_total_p95_ms": total_p95,
    }
    # Where the time goes under load: CPU spent per question by the web server process and by the
    # database server, and the rate two such cores could sustain.
    web_ms = (cpu_after["web"] - cpu_before["web"]) * 1000 / max(1, streams)
    database_ms = (cpu_after["database"] - cpu_before["database"]) * 1000 / max(1, streams)
    figures["concurrent_web_cpu_ms_per_question"] = round(web_ms, 1)
    figures["concurrent_database_cpu_ms_per_question"] = round(database_ms, 1)
    capacity = (os.cpu_count() or 1) * 1000 / max(1.0, web_ms + database_ms)
    figures["concurrent_capacity_questions_per_s"] = round(capacity, 1)
    if errors:
        figures["concurrent_first_error"] = errors[0]
    return figures


def bare_litellm(*, provider_url: str, streams: int) -> dict[str, Any]:
    """CPU per answer of a bare `litellm.acompletion` stream from the same provider, `streams` at once, in a
    child process of its own (see portal/assistant/bench/bare_litellm.py)."""
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="portal.settings")
    env["PORTAL_DB_NAME"] = str(connection.settings_dict["NAME"])
    command = [sys.executable, "-m", "portal.assistant.bench.bare_litellm", provider_url, str(streams),
               BENCH_KEY_VARIABLE]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=settings.BASE_DIR, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"the bare litellm run failed: {done.stderr.strip()[-500:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures
