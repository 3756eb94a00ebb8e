"""A var/ folder of its own for every test run, set up before Django reads its settings.

Loaded with `-p tests.isolation` (pyproject's addopts), because pytest-django imports the settings in its own
`pytest_load_initial_conftests`, before any conftest.py runs, and the settings compute every path under
PORTAL_VAR_DIR at import time. Without this, tests wrote into the checkout's var/: a transactional test left real
`knowledge.document_process` messages in var/broker/queue/ that the next `make run` worker executed against the
real database.

What the run's folder holds: the embedded broker, uploads and media, the audit key, checkpoints and exports, the
secret and vault keys, Celery beat schedules. What stays shared with the checkout, on purpose:
- the embedded PostgreSQL server (var/pgdata): pytest-django creates and drops `test_*` databases on it, which
  never touch the portal's own database; a server per run would pay initdb and a start-up, and hold its own
  shared buffers, on every run;
- the exported ONNX model (var/models): the same files for every run, expensive to make (tens of seconds), and
  exported under a file lock (knowledge.embeddings) so concurrent processes cannot swap them under each other.

The controller (or a run without xdist) creates the folder and passes it to the xdist workers and to every
subprocess a test starts through the environment (RUN_DIR_VARIABLE), so all of them agree on it; it also prepares
the model cache once, before the workers start, and removes the folder at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

RUN_DIR_VARIABLE = "PORTAL_TEST_RUN_DIR"
CHECKOUT = Path(__file__).resolve().parent.parent
CHECKOUT_VAR = CHECKOUT / "var"
# Settings that default to a path under PORTAL_VAR_DIR: a value from the developer's shell must not send the
# tests' files to the real places.
PATHS_UNDER_VAR = (
    "CELERY_FILESYSTEM_BROKER_DIR",
    "AUDIT_DIR",
    "AUDIT_CHECKPOINT_KEY_PATH",
    "AUDIT_CHECKPOINT_PUBLIC_KEY_PATH",
    "AUDIT_CHECKPOINT_DIR",
    "AUDIT_EXPORT_DIR",
    "KNOWLEDGE_STORAGE_DIR",
    "SUBJECT_BUNDLE_DIR",
)
_owner_key = pytest.StashKey[Path]()


def _is_xdist_worker() -> bool:
    return "PYTEST_XDIST_WORKER" in os.environ


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    run_dir = os.environ.get(RUN_DIR_VARIABLE)
    if not run_dir or not _is_xdist_worker():
        # The controller, or a plain run: a new folder even if the variable came from a shell that ran tests.
        run_dir = tempfile.mkdtemp(prefix="portal-test-run-")
        os.environ[RUN_DIR_VARIABLE] = run_dir
        early_config.stash[_owner_key] = Path(run_dir)
    var_dir = Path(run_dir) / "var"
    var_dir.mkdir(exist_ok=True)
    os.environ["PORTAL_VAR_DIR"] = str(var_dir)
    for name in PATHS_UNDER_VAR:
        os.environ.pop(name, None)
    os.environ.pop("CELERY_BROKER_URL", None)  # the embedded broker in the run's folder; Redis tests say so
    os.environ.setdefault("PORTAL_PGDATA_DIR", str(CHECKOUT_VAR / "pgdata"))
    os.environ.setdefault("KNOWLEDGE_MODEL_CACHE_DIR", str(CHECKOUT_VAR / "models"))


def pytest_configure(config: pytest.Config) -> None:
    if _is_xdist_worker() or config.option.collectonly or not _wants_tests(config):
        return
    # Once per run and before the xdist workers start (they are started at session start, after this).
    from knowledge.embeddings import prepare_model_cache

    prepare_model_cache()


def _wants_tests(config: pytest.Config) -> bool:
    return not (config.getoption("help", False) or config.getoption("version", 0))


def pytest_unconfigure(config: pytest.Config) -> None:
    run_dir = config.stash.get(_owner_key, None)
    if run_dir is not None:
        shutil.rmtree(run_dir, ignore_errors=True)
