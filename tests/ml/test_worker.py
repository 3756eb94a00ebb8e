"""Training in a real Celery worker (a subprocess, as `manage.py run` starts it), never in this process.

Self-contained: its own broker folder and model folder; the worker works on this test's database.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.db import connection

from portal.ml.models import ModelVersion, Purpose, RunStatus, TrainingRun
from tests.conftest import REPO_ROOT
from tests.ml.helpers import seed_task_examples

pytestmark = pytest.mark.django_db(transaction=True)
CEILING_SECONDS = 600  # a loaded 2-core machine: load the embedding model, embed, fit, save


@pytest.fixture
def worker(tmp_path: Path, subprocess_env: dict[str, str], model_dir: Path) -> Iterator[Celery]:
    broker = tmp_path / "broker"
    for folder in ("queue", "processed"):
        (broker / folder).mkdir(parents=True)
    env = dict(
        subprocess_env,
        CELERY_FILESYSTEM_BROKER_DIR=str(broker),
        PORTAL_DB_NAME=str(connection.settings_dict["NAME"]),
        ML_MODEL_DIR=str(model_dir),
        DB_POOL="0",
    )
    env.pop("CELERY_BROKER_URL", None)
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "portal",
        "worker",
        "--pool",
        "solo",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    log = tmp_path / "worker.log"
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    client = Celery("ml-test-client", broker="filesystem://", set_as_current=False)
    client.conf.broker_transport_options = {
        "data_folder_in": str(broker / "queue"),
        "data_folder_out": str(broker / "queue"),
        "processed_folder": str(broker / "processed"),
        "control_folder": str(broker / "control"),  # not ./control in the checkout
    }
    yield client
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def _wait_for(run: TrainingRun, log: Any) -> list[int]:
    seen = []
    deadline = time.monotonic() + CEILING_SECONDS
    while time.monotonic() < deadline:
        run.refresh_from_db()
        seen.append(run.progress)
        if run.is_final:
            return seen
        time.sleep(0.2)
    pytest.fail(f"training did not finish within {CEILING_SECONDS} s; worker log:\n{log.read_text()[-3000:]}")


def test_a_real_worker_trains_the_task_router_with_progress_in_the_database(
    worker: Celery, model_dir: Path, tmp_path: Path
) -> None:
    seed_task_examples()
    run = TrainingRun.objects.create(purpose=Purpose.TASK_ROUTER, parameters={})

    worker.send_task("ml.train", args=[run.pk])
    progress = _wait_for(run, tmp_path / "worker.log")

    assert run.status == RunStatus.DONE, run.message
    assert run.progress == 100 and progress == sorted(progress)  # it only moves forward
    assert run.model_version_id is not None
    model = ModelVersion.objects.get(pk=run.model_version_id)
    assert (model_dir / model.file_name).is_file()
    assert model.metrics["model"]["macro_f1"] > model.metrics["baseline"]["macro_f1"]
