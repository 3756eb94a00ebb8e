"""Training helpers for the local-model tests: real data, real training, in this process (the worker's
job done synchronously; tests/ml/test_worker.py runs it in a real worker)."""

from __future__ import annotations

from typing import Any

from portal.ml import services
from portal.ml.demo import task_examples
from portal.ml.models import ModelVersion, TrainingRun


def train(purpose: str, *, actor: Any = None, **parameters: Any) -> TrainingRun:
    run = TrainingRun.objects.create(purpose=purpose, parameters=parameters, requested_by=actor)
    services.training_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def trained_model(purpose: str, **parameters: Any) -> ModelVersion:
    run = train(purpose, **parameters)
    assert run.model_version is not None, run.message
    return run.model_version


def seed_task_examples() -> None:
    services.demo_task_labels_ensure(examples=task_examples())
