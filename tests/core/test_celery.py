"""A real Celery worker, started as a subprocess, against the embedded broker and against Redis."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from tests.conftest import REPO_ROOT

WORKER_START_TIMEOUT = 90


def _redis_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool", "solo", "--loglevel", "INFO",
               "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _stop(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()


@pytest.fixture
def filesystem_worker(tmp_path: Path, subprocess_env: dict[str, str]) -> Iterator[Celery]:
    broker_dir = tmp_path / "broker"
    results = tmp_path / "results"
    results.mkdir()
    env = dict(subprocess_env, CELERY_FILESYSTEM_BROKER_DIR=str(broker_dir), CELERY_RESULT_BACKEND=f"file://{results}")
    env.pop("CELERY_BROKER_URL", None)
    worker = _start_worker(env, tmp_path / "worker.log")
    client = Celery("test-client", broker="filesystem://", backend=f"file://{results}", set_as_current=False)
    client.conf.broker_transport_options = {
        "data_folder_in": str(broker_dir / "queue"),
        "data_folder_out": str(broker_dir / "queue"),
        "processed_folder": str(broker_dir / "processed"),
        "control_folder": str(broker_dir / "control"),  # not ./control in the checkout
    }
    (broker_dir / "queue").mkdir(parents=True, exist_ok=True)
    (broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    yield client
    _stop(worker)


@pytest.fixture
def redis_worker(tmp_path: Path, subprocess_env: dict[str, str]) -> Iterator[Celery]:
    if not _redis_available():
        if subprocess_env.get("CI"):
            pytest.fail("Redis is not running on 127.0.0.1:6379 (.ci/run starts it)")
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    url = "redis://127.0.0.1:6379/14"
    env = dict(subprocess_env, CELERY_BROKER_URL=url, CELERY_RESULT_BACKEND=url)
    worker = _start_worker(env, tmp_path / "worker.log")
    yield Celery("test-client", broker=url, backend=url, set_as_current=False)
    _stop(worker)


def test_a_real_worker_runs_tasks_from_the_embedded_broker(filesystem_worker: Celery) -> None:
    result = filesystem_worker.send_task("portal.ping", args=["embedded"])
    assert result.get(timeout=WORKER_START_TIMEOUT) == "pong:embedded"


@pytest.mark.redis
def test_a_real_worker_runs_tasks_from_redis(redis_worker: Celery) -> None:
    result = redis_worker.send_task("portal.ping", args=["redis"])
    assert result.get(timeout=WORKER_START_TIMEOUT) == "pong:redis"


def test_the_worker_settings_survive_crashes() -> None:
    from portal.celery import app

    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert 0 < app.conf.task_soft_time_limit < app.conf.task_time_limit
