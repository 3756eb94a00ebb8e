"""A test run keeps its files in a folder of its own (tests/isolation.py), never in the checkout's var/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connections

from tests.conftest import REPO_ROOT
from tests.isolation import CHECKOUT_VAR, RUN_DIR_VARIABLE

CHECKOUT_QUEUE = CHECKOUT_VAR / "broker" / "queue"


def _run_dir() -> Path:
    return Path(os.environ[RUN_DIR_VARIABLE]).resolve()


def _written_paths() -> dict[str, Path]:
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    return {
        "VAR_DIR": settings.VAR_DIR,
        "MEDIA_ROOT": settings.MEDIA_ROOT,
        "STATIC_ROOT": settings.STATIC_ROOT,
        "default storage": Path(settings.STORAGES["default"]["OPTIONS"]["location"]),
        "KNOWLEDGE_STORAGE_DIR": settings.KNOWLEDGE_STORAGE_DIR,
        "AUDIT_DIR": settings.AUDIT_DIR,
        "AUDIT_CHECKPOINT_KEY_PATH": settings.AUDIT_CHECKPOINT_KEY_PATH,
        "AUDIT_CHECKPOINT_DIR": settings.AUDIT_CHECKPOINT_DIR,
        "AUDIT_EXPORT_DIR": settings.AUDIT_EXPORT_DIR,
        "broker queue": Path(options["data_folder_in"]),
        "broker out": Path(options["data_folder_out"]),
        "broker processed": Path(options["processed_folder"]),
        "broker control": Path(options["control_folder"]),
    }


def test_every_folder_the_portal_writes_to_is_inside_the_runs_own_folder() -> None:
    run_dir = _run_dir()
    assert not run_dir.is_relative_to(REPO_ROOT)
    outside = {
        name: path for name, path in _written_paths().items() if not Path(path).resolve().is_relative_to(run_dir)
    }
    assert outside == {}
    # Shared on purpose (see tests/isolation.py): the database server, and the exported model.
    assert Path(settings.PORTAL_PGDATA_DIR) == CHECKOUT_VAR / "pgdata"
    assert str(connections["default"].settings_dict["NAME"]).startswith("test_")


def test_subprocesses_use_the_same_run_folder(subprocess_env: dict[str, str]) -> None:
    code = (
        "from django.conf import settings; print(settings.VAR_DIR); "
        "print(settings.CELERY_BROKER_TRANSPORT_OPTIONS['data_folder_in'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=REPO_ROOT, env=subprocess_env, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    var_dir, queue = result.stdout.split()
    assert Path(var_dir) == settings.VAR_DIR
    assert Path(queue).is_relative_to(_run_dir())


def _queued_files(folder: Path) -> set[str]:
    return {path.name for path in folder.glob("*.msg")} if folder.is_dir() else set()


@pytest.mark.django_db(transaction=True)
def test_a_committed_upload_queues_its_job_in_the_runs_broker_not_the_checkouts(alice: Any) -> None:
    from knowledge import services
    from tests.knowledge.factories import KnowledgeBaseFactory

    run_queue = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
    before_checkout, before_run = _queued_files(CHECKOUT_QUEUE), _queued_files(run_queue)
    services.document_upload(
        actor=None,
        knowledge_base=KnowledgeBaseFactory.create(),
        filename="isolation.md",
        data=b"# Isolation\nA test file.",
    )
    assert len(_queued_files(run_queue) - before_run) == 1  # committed, so on_commit sent the job ...
    assert _queued_files(CHECKOUT_QUEUE) == before_checkout  # ... and not where `make run` would execute it
