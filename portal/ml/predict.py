"""Using the active models at run time. Every function here falls back (returns None) rather than raise:
a model that is missing, tampered with or broken must never fail a question or an ingestion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from portal.ml.models import ModelState, ModelVersion, Purpose
from portal.ml.registry import ModelLoadError, cached_load

logger = logging.getLogger(__name__)
_reported: set[tuple[int, str]] = set()


@dataclass(frozen=True)
class LoadedModel:
    version: ModelVersion
    artifact: dict[str, Any]


def active_model(purpose: str) -> LoadedModel | None:
    """The active model of `purpose`, loaded and verified; None (after recording why) if it cannot be used."""
    version = (
        ModelVersion.objects.filter(purpose=purpose, state=ModelState.ACTIVE)
        .only("pk", "purpose", "version", "file_name", "sha256", "load_error")
        .first()
    )
    if version is None:
        return None
    try:
        artifact = cached_load(model_id=version.pk, file_name=version.file_name, sha256=version.sha256)
    except ModelLoadError as error:
        _report_failure(version, str(error))
        return None
    return LoadedModel(version=version, artifact=artifact)


def _report_failure(version: ModelVersion, reason: str) -> None:
    """Record the failure once per process and model (on the registry row and in the audit trail)."""
    key = (version.pk, reason)
    if key in _reported:
        return
    _reported.add(key)
    logger.error("local model %s v%s cannot be used: %s", version.purpose, version.version, reason)
    try:
        from portal.ml.services import model_load_failure_record

        model_load_failure_record(model_id=version.pk, reason=reason)
    except Exception:  # noqa: BLE001 - the fallback must still answer
        logger.exception("could not record the load failure of model %s", version.pk)


# ---- task router ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskPrediction:
    task_type: str
    probability: float
    model_version: int

    @property
    def reason(self) -> str:
        return f"{self.task_type}: learned task router v{self.model_version} (probability {self.probability:.2f})"


@dataclass(frozen=True)
class TaskRouterUnavailable:
    """An active router exists but cannot be used: the keyword classifier answers, and the reason says so."""

    model_version: int

    @property
    def note(self) -> str:
        return f"learned task router v{self.model_version} unavailable, keyword classifier used"


def task_type_predict(question: str) -> TaskPrediction | TaskRouterUnavailable | None:
    """The learned router's task type for `question`; None when no router is active."""
    from portal.ml import features
    from portal.ml.training import text_predict

    has_active = ModelVersion.objects.filter(purpose=Purpose.TASK_ROUTER, state=ModelState.ACTIVE)
    loaded = active_model(Purpose.TASK_ROUTER)
    if loaded is None:
        version = has_active.values_list("version", flat=True).first()
        return TaskRouterUnavailable(model_version=version) if version is not None else None
    try:
        embedding = features.embed([question], query=True) if loaded.artifact.get("uses_embedding") else None
        probabilities = text_predict(loaded.artifact, [question], embedding)[0]
    except Exception as error:  # noqa: BLE001 - fall back to the keyword classifier, never fail the question
        _report_failure(loaded.version, f"prediction failed ({type(error).__name__})")
        return TaskRouterUnavailable(model_version=loaded.version.version)
    best = int(np.argmax(probabilities))
    return TaskPrediction(
        task_type=str(loaded.artifact["labels"][best]),
        probability=round(float(probabilities[best]), 4),
        model_version=loaded.version.version,
    )


# ---- text scores for passages --------------------------------------------------------------------------
def text_scores(
    loaded: LoadedModel, texts: list[str], embeddings: np.ndarray | None
) -> list[tuple[str, float, dict[str, float]]]:
    """(label, probability, all probabilities) per text."""
    from portal.ml.training import text_predict

    probabilities = text_predict(loaded.artifact, texts, embeddings)
    labels = loaded.artifact["labels"]
    result = []
    for row in probabilities:
        best = int(np.argmax(row))
        result.append(
            (str(labels[best]), float(row[best]), {label: float(p) for label, p in zip(labels, row, strict=True)})
        )
    return result
