from __future__ import annotations

from typing import Any

import pytest

from knowledge.models import KnowledgeBase
from portal.ml import services
from portal.ml.demo import DEMO_PURPOSES, demo_ml_ensure
from portal.ml.models import ModelState, Purpose, RunStatus, TaskLabel, TrainingRun

pytestmark = pytest.mark.django_db


def test_the_demo_queues_one_run_per_model_once(settings: Any) -> None:
    demo_ml_ensure()
    demo_ml_ensure()
    assert TaskLabel.objects.filter(source="demo").count() == 158
    labels = dict(KnowledgeBase.objects.values_list("name", "classification"))
    assert labels["Larkspur news and products"] == "public"
    assert labels["Larkspur board and finance"] == "confidential"
    assert labels["Larkspur people records"] == "local_only"
    runs = TrainingRun.objects.all()
    assert sorted(run.purpose for run in runs) == sorted(DEMO_PURPOSES)
    assert all(run.status == RunStatus.QUEUED and run.parameters == {"activate_if_better": True} for run in runs)


def test_a_demo_run_activates_its_model_only_when_it_beats_the_baseline() -> None:
    demo_ml_ensure()
    run = TrainingRun.objects.get(purpose=Purpose.TASK_ROUTER)
    services.training_run_execute(run_id=run.pk)
    run.refresh_from_db()
    model = run.model_version
    assert model is not None and services.beats_baseline(model)
    assert model.state == ModelState.ACTIVE and model.activated_by is None
