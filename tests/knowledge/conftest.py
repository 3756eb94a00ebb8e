from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def knowledge_storage(settings: Any, tmp_path: Path) -> Path:
    """Uploaded originals go to a temporary folder, not var/."""
    location = tmp_path / "knowledge-files"
    settings.STORAGES = {
        **settings.STORAGES,
        "knowledge": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(location)}},
    }
    return location


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    """Run Celery tasks in the caller's process (the worker's job, done synchronously)."""
    from portal.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous
