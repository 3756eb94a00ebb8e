"""Real Celery workers for the real tasks: subprocesses on the embedded (filesystem) broker or on Redis.

A test asks for `workers` (and, to choose the broker, parametrizes `worker_broker` indirectly with "filesystem"
or "redis"). Its database rows must be committed for the worker to see them, so the fixture needs a
transactional test database; the worker connects to that same test database (PORTAL_DB_NAME), reads uploads and
writes exports where the test's settings say, and the test process itself sends to the test's own broker
(`portal_app_on`), so jobs queued by the code under test (on_commit -> .delay) reach the worker the real way.

Each test gets a broker of its own: a filesystem queue under tmp_path, or Redis database 12, flushed before and
after, with every Redis test in one xdist group so two of them never share it (14 belongs to the ping test).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/12"
REDIS_GROUP = "redis-db-12"  # xdist group of every test on REDIS_URL
WORK_SECONDS = 300  # ceiling for work a worker does (start-up and model load included) on a loaded machine
STOP_SECONDS = 30

T = TypeVar("T")


def redis_available() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1):
            return True
    except OSError:
        return False


def require_redis() -> None:
    if redis_available():
        return
    if os.environ.get("CI"):
        pytest.fail(f"Redis is not running on {REDIS_HOST}:{REDIS_PORT} (.ci/run starts it)")
    pytest.skip(f"Redis is not running on {REDIS_HOST}:{REDIS_PORT}")


@dataclass
class Broker:
    name: str
    url: str
    transport_options: dict[str, Any]
    worker_env: dict[str, str]
    cleanup: Callable[[], None] = field(default=lambda: None)


def filesystem_broker(folder: Path) -> Broker:
    queue, processed = folder / "queue", folder / "processed"
    queue.mkdir(parents=True, exist_ok=True)
    processed.mkdir(parents=True, exist_ok=True)
    options = {
        "data_folder_in": str(queue),
        "data_folder_out": str(queue),
        "processed_folder": str(processed),
        "control_folder": str(folder / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
    return Broker("filesystem", "filesystem://", options, {"CELERY_FILESYSTEM_BROKER_DIR": str(folder)})


def redis_broker() -> Broker:
    require_redis()
    import redis
    from django.conf import settings

    # Keys of this test alone: another run on the same machine (a second checkout, CI beside a developer) shares
    # Redis db 12, and a flush or a worker of that run must not take or drop this test's jobs, nor this its.
    prefix = f"portal-test-{uuid.uuid4().hex}:"
    client = redis.Redis.from_url(REDIS_URL)

    def cleanup() -> None:
        for key in client.scan_iter(match=f"{prefix}*", count=500):
            client.delete(key)

    return Broker(
        "redis",
        REDIS_URL,
        {"visibility_timeout": settings.CELERY_TASK_TIME_LIMIT + 300, "global_keyprefix": prefix},
        {"CELERY_BROKER_URL": REDIS_URL, "CELERY_REDIS_KEY_PREFIX": prefix},
        cleanup=cleanup,
    )


def _point_app_at(url: str, options: dict[str, Any]) -> None:
    from kombu import pools

    from portal.celery import app

    app.conf.update(broker_url=url, broker_transport_options=options)
    # Connections and producers are pooled (per broker, process-wide); close and forget them all, so the next
    # message opens a connection to the new broker and no closed pool is handed out again.
    pools.reset()
    app._pool = None  # type: ignore[attr-defined]  # private (not in celery-stubs)
    app.amqp._producer_pool = None  # type: ignore[attr-defined]  # private (not in celery-stubs)


@contextmanager
def portal_app_on(broker: Broker) -> Iterator[None]:
    """Jobs this process queues (the code under test's .delay()) go to `broker` while the block runs."""
    from portal.celery import app

    saved = (app.conf.broker_url, dict(app.conf.broker_transport_options or {}))
    _point_app_at(broker.url, broker.transport_options)
    try:
        yield
    finally:
        _point_app_at(*saved)


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """kill -9 of the whole worker: the main process, its prefork children and an embedded beat."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(STOP_SECONDS)

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)  # warm shutdown; the main process stops its children
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class Workers:
    """Starts workers on one broker against the test database; every one is stopped when the test ends."""

    def __init__(self, broker: Broker, env: dict[str, str], folder: Path) -> None:
        self.broker = broker
        self._env = env
        self._folder = folder
        self._started: list[Worker] = []

    def start(self, *, beat: bool = False, **env: str) -> Worker:
        number = len(self._started) + 1
        command = [
            sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool", "prefork", "--concurrency", "1",
            "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--hostname", f"test-{uuid.uuid4().hex[:8]}@%h",
        ]  # fmt: skip
        if beat:
            command += ["--beat", "--schedule", str(self._folder / f"beat-schedule-{number}")]
        log = self._folder / f"worker-{number}.log"
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**self._env, **env},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so kill() reaches the prefork children too
        )
        worker = Worker(process, log)
        self._started.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self._started:
            worker.stop()

    def logs(self) -> str:
        return "\n".join(f"--- worker {n} ---\n{w.log_tail()}" for n, w in enumerate(self._started, 1))

    def wait_for(self, what: str, probe: Callable[[], T | None], timeout: float = WORK_SECONDS) -> T:
        """Poll `probe` until it returns something truthy; fail with the workers' logs after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{self.logs()}")
            if self._started and not any(worker.alive() for worker in self._started):
                pytest.fail(f"every worker exited while waiting for {what}\n{self.logs()}")
            time.sleep(0.05)  # a polling interval, not a wait for the work


def _worker_env(base: dict[str, str], broker: Broker) -> dict[str, str]:
    from django.conf import settings
    from django.db import connection

    env = dict(base)
    env.pop("CELERY_BROKER_URL", None)
    env.pop("CELERY_RESULT_BACKEND", None)
    knowledge_storage = settings.STORAGES[settings.KNOWLEDGE_STORAGE_ALIAS]["OPTIONS"]["location"]
    env.update(
        PORTAL_DB_NAME=str(connection.settings_dict["NAME"]),  # the test database (test_portal_gw0, ...)
        KNOWLEDGE_STORAGE_DIR=str(knowledge_storage),  # where this test's uploads are
        AUDIT_EXPORT_DIR=str(settings.AUDIT_EXPORT_DIR),  # where this test's downloads are read from
        **broker.worker_env,
    )
    return env


@pytest.fixture
def worker_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    name = getattr(request, "param", "filesystem")
    broker = redis_broker() if name == "redis" else filesystem_broker(tmp_path / "broker")
    yield broker
    broker.cleanup()


@pytest.fixture
def workers(
    transactional_db: None, worker_broker: Broker, subprocess_env: dict[str, str], tmp_path: Path
) -> Iterator[Workers]:
    started = Workers(worker_broker, _worker_env(subprocess_env, worker_broker), tmp_path)
    with portal_app_on(worker_broker):
        try:
            yield started
        finally:
            started.stop_all()


BROKERS = [
    pytest.param("filesystem", id="embedded-broker"),
    pytest.param("redis", id="redis", marks=[pytest.mark.redis, pytest.mark.xdist_group(REDIS_GROUP)]),
]
