from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from audit.models import AuditEvent
from portal.ml import training
from portal.ml.models import ModelState, Purpose, RunStatus, TaskLabel
from tests.ml.helpers import seed_task_examples, train

pytestmark = pytest.mark.django_db


def test_the_task_router_trains_on_the_examples_and_beats_the_keyword_classifier(model_dir: Path) -> None:
    seed_task_examples()
    run = train(Purpose.TASK_ROUTER)
    assert run.status == RunStatus.DONE, run.message
    model = run.model_version
    assert model is not None and model.state == ModelState.CANDIDATE and model.version == 1
    path = model_dir / model.file_name
    assert hashlib.sha256(path.read_bytes()).hexdigest() == model.sha256
    assert model.training_data["examples"] == TaskLabel.objects.count()
    assert set(model.training_data["label_distribution"]) == {"routine", "summarize", "draft", "analyze", "research"}
    metrics = model.metrics
    assert metrics["baseline"]["name"] == "keyword classifier"
    assert metrics["split"]["test"] == metrics["model"]["examples"] == metrics["baseline"]["examples"]
    assert metrics["model"]["macro_f1"] > metrics["baseline"]["macro_f1"]
    assert 0 <= metrics["model"]["calibration"]["ece"] <= 1
    assert {"premium_share", "cost_per_1000"} <= set(metrics["model"]["routing"])
    assert AuditEvent.objects.filter(action="ml.model_trained", object_id=str(model.pk)).exists()


def test_too_few_labels_say_how_many_more_are_needed_and_make_no_model() -> None:
    TaskLabel.objects.bulk_create(
        [TaskLabel(text=f"how many days {n}", task_type="routine", source="demo") for n in range(12)]
    )
    run = train(Purpose.TASK_ROUTER)
    assert run.status == RunStatus.FAILED
    assert run.message == training.ERROR_TOO_FEW.format(count=12, needed=training.MIN_EXAMPLES, more=8)
    assert run.model_version is None
    assert AuditEvent.objects.filter(action="ml.training_failed", object_id=str(run.pk)).exists()


def test_a_single_class_is_refused_with_the_closest_other_class() -> None:
    TaskLabel.objects.bulk_create(
        [TaskLabel(text=f"question {n}", task_type="routine", source="demo") for n in range(25)]
        + [TaskLabel(text=f"summarize {n}", task_type="summarize", source="demo") for n in range(3)]
    )
    run = train(Purpose.TASK_ROUTER)
    assert run.status == RunStatus.FAILED
    assert "Only one class has 5 or more examples (routine)" in run.message
    assert "summarize with 3 (2 more needed)" in run.message


def test_the_injection_detector_reports_cross_validated_f1_and_auc() -> None:
    run = train(Purpose.INJECTION)
    assert run.status == RunStatus.DONE, run.message
    cross_validation = run.model_version.metrics["cross_validation"]  # type: ignore[union-attr]
    assert cross_validation["folds"] == 5
    assert 0.5 < cross_validation["f1_mean"] <= 1 and 0.5 < cross_validation["auc_mean"] <= 1


def test_a_second_model_is_scored_next_to_the_active_one_on_the_same_split(settings: Any) -> None:
    from portal.ml import services

    run = train(Purpose.INJECTION)
    assert run.model_version is not None
    services.model_activate(actor=None, model=run.model_version)
    second = train(Purpose.INJECTION).model_version
    assert second is not None and second.version == 2
    assert second.metrics["active"]["version"] == 1
    assert second.metrics["active"]["examples"] == second.metrics["model"]["examples"]
