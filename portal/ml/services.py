"""Writes of the local-model app: training, activation, retirement, labels, reviews and predictions.
Each is audited in its own transaction (audit.services.audit()); training itself runs in the worker."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from audit.models import Outcome
from audit.services import audit
from portal.ml.models import (
    CUSTOMER_PURPOSES,
    CustomerPrediction,
    DocumentSuggestion,
    FlagKind,
    FlagStatus,
    LabelSource,
    ModelState,
    ModelVersion,
    PassageFlag,
    Purpose,
    RunStatus,
    TaskLabel,
    TrainingRun,
)

logger = logging.getLogger(__name__)
Actor = User | None

TRAIN_PERMISSION = "ml.train_model"
ACTIVATE_PERMISSION = "ml.activate_model"
RELABEL_PERMISSION = "ml.relabel_questions"
REVIEW_PERMISSION = "ml.review_sensitivity"
ERROR_NO_TRAIN = "Your role may not train local models."
ERROR_NO_ACTIVATE = "Your role may not activate or retire local models."
ERROR_NO_RELABEL = "Your role may not correct the task type of questions."
ERROR_NO_REVIEW = "Your role may not review sensitivity and injection flags."
ERROR_ALREADY_RUNNING = "A {purpose} training run is already queued or running; wait for it to finish."
ERROR_NOT_CANDIDATE = "Only a candidate model can be activated (this one is {state})."
ERROR_NOT_ACTIVE_OR_CANDIDATE = "This model is already retired."
ERROR_UNKNOWN_TASK_TYPE = "Unknown task type {task_type!r}."
ERROR_REVIEWED = "This flag was already reviewed."
ERROR_BAD_VERDICT = "Confirm or dismiss the flag."
ERROR_CHURN_DAYS = "Churn days must be between 7 and 365."
LABEL_RANK = {"public": 0, "internal": 1, "confidential": 2, "local_only": 3}
# A passage is flagged when the model gives at least this probability to the labels above its base (or to
# "injection"): with four labels and a few hundred passages the top label alone is rarely very confident.
FLAG_PROBABILITY = 0.5
MAX_RUN_SECONDS = 15 * 60


def _require(actor: Actor, permission: str, message: str) -> None:
    if actor is not None and not getattr(actor, "has_perm", lambda _: False)(permission):
        raise PermissionDenied(message)


def _system(actor: Actor) -> dict[str, Any]:
    return {"actor": actor, "actor_username": "" if actor is not None else "system"}


# ---- training ------------------------------------------------------------------------------------------
@transaction.atomic
def training_request(*, actor: Actor, purpose: str, parameters: dict[str, Any] | None = None) -> TrainingRun:
    """Queue a training run (the worker does the work; the web process only writes this row)."""
    _require(actor, TRAIN_PERMISSION, ERROR_NO_TRAIN)
    purpose = Purpose(purpose)
    parameters = dict(parameters or {})
    if purpose == Purpose.CUSTOMER_CHURN and "churn_days" in parameters:
        days = int(parameters["churn_days"])
        if not 7 <= days <= 365:
            raise ValidationError(ERROR_CHURN_DAYS)
    stale = timezone.now() - dt.timedelta(seconds=MAX_RUN_SECONDS)
    busy = TrainingRun.objects.select_for_update().filter(
        purpose=purpose, status__in=[RunStatus.QUEUED, RunStatus.RUNNING], created_at__gte=stale
    )
    if busy.exists():
        raise ValidationError(ERROR_ALREADY_RUNNING.format(purpose=purpose.label.lower()))
    run = TrainingRun(purpose=purpose, parameters=parameters, requested_by=actor if actor is not None else None)
    run.full_clean()
    run.save()
    audit(
        **_system(actor),
        action="ml.training_requested",
        target=run,
        details={"purpose": purpose, "parameters": parameters},
    )
    from portal.ml.tasks import training_run_task

    run_id = run.pk
    transaction.on_commit(lambda: training_run_task.delay(run_id))
    return run


def _progress_store(*, run_id: int, percent: int, stage: str) -> None:
    """Progress of a running training (shown by the polling page); not an audited change."""
    TrainingRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(progress=min(99, percent), stage=stage[:200])


def training_run_execute(*, run_id: int) -> str:
    """Train one run (in the worker): the candidate, its metrics, and the active model's on the same split."""
    from portal.ml import registry, training
    from portal.ml.predict import active_model

    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != RunStatus.QUEUED:
            return run.status if run is not None else "missing"  # a redelivered message: done already
        run.status, run.started_at, run.stage = RunStatus.RUNNING, timezone.now(), "starting"
        run.save(update_fields=["status", "started_at", "stage"])
        audit(
            actor=None,
            actor_username="system",
            action="ml.training_started",
            target=run,
            details={"purpose": run.purpose},
        )
    started = time.perf_counter()
    try:
        current = active_model(run.purpose)
        trained = training.train(
            purpose=run.purpose,
            parameters=run.parameters,
            progress=lambda percent, stage: _progress_store(run_id=run_id, percent=percent, stage=stage),
            active=current.artifact if current is not None else None,
        )
        _progress_store(run_id=run_id, percent=95, stage="saving the model file")
        if current is not None and "active" in trained.metrics:
            trained.metrics["active"]["version"] = current.version.version
        with transaction.atomic():
            version_number = (
                ModelVersion.objects.filter(purpose=run.purpose).aggregate(n=Max("version"))["n"] or 0
            ) + 1
            saved = registry.artifact_save(artifact=trained.artifact, stem=f"{run.purpose}-v{version_number}")
            model = _candidate_create(
                run=run, version=version_number, trained=trained, saved=saved, seconds=time.perf_counter() - started
            )
    except training.NotEnoughData as error:
        _run_fail(run_id=run_id, message=str(error), reason="not_enough_data")
        return RunStatus.FAILED
    except Exception as error:
        logger.exception("ml: training run %s failed", run_id)
        _run_fail(run_id=run_id, message=f"Training failed unexpectedly ({type(error).__name__}).", reason="error")
        return RunStatus.FAILED
    if run.parameters.get("activate_if_better") and beats_baseline(model):
        model_activate(actor=None, model=model, reason="demo setup: beats its baseline")
    return RunStatus.DONE


def _candidate_create(*, run: TrainingRun, version: int, trained: Any, saved: Any, seconds: float) -> ModelVersion:
    model = ModelVersion(
        purpose=run.purpose,
        version=version,
        state=ModelState.CANDIDATE,
        algorithm=trained.algorithm[:200],
        file_name=saved.file_name,
        sha256=saved.sha256,
        size_bytes=saved.size_bytes,
        training_data=trained.training_data,
        metrics=trained.metrics,
        parameters=trained.parameters,
        trained_by=run.requested_by,
        training_seconds=round(seconds, 2),
    )
    model.full_clean()
    model.save()
    TrainingRun.objects.filter(pk=run.pk).update(
        status=RunStatus.DONE, progress=100, stage="done", finished_at=timezone.now(), model_version=model
    )
    audit(
        actor=None,
        actor_username="system",
        action="ml.model_trained",
        target=model,
        details={
            "purpose": run.purpose,
            "version": version,
            "run_id": run.pk,
            "sha256": saved.sha256,
            "examples": trained.training_data.get("examples"),
            "macro_f1": primary_score(model),
            "baseline_macro_f1": baseline_score(model),
            "requested_by_id": run.requested_by_id,
            "seconds": round(seconds, 2),
        },
    )
    return model


@transaction.atomic
def _run_fail(*, run_id: int, message: str, reason: str) -> None:
    TrainingRun.objects.filter(pk=run_id).update(
        status=RunStatus.FAILED, stage="failed", message=message, finished_at=timezone.now()
    )
    audit(
        actor=None,
        actor_username="system",
        action="ml.training_failed",
        object_type="ml.trainingrun",
        object_id=run_id,
        outcome=Outcome.FAILURE,
        details={"reason": reason, "message": message},
    )


def primary_score(model: ModelVersion) -> float | None:
    value = (model.metrics.get("model") or {}).get("macro_f1")
    return float(value) if value is not None else None


def baseline_score(model: ModelVersion) -> float | None:
    value = (model.metrics.get("baseline") or {}).get("macro_f1")
    return float(value) if value is not None else None


def beats_baseline(model: ModelVersion) -> bool:
    score, baseline = primary_score(model), baseline_score(model)
    return score is not None and baseline is not None and score > baseline


# ---- registry states -------------------------------------------------------------------------------------
@transaction.atomic
def model_activate(*, actor: Actor, model: ModelVersion, reason: str = "") -> ModelVersion:
    """Make `model` the one in use for its purpose; the previous active one is retired."""
    _require(actor, ACTIVATE_PERMISSION, ERROR_NO_ACTIVATE)
    model = ModelVersion.objects.select_for_update().get(pk=model.pk)
    if model.state != ModelState.CANDIDATE:
        raise ValidationError(ERROR_NOT_CANDIDATE.format(state=model.state))
    now = timezone.now()
    previous = list(
        ModelVersion.objects.select_for_update().filter(
            purpose=model.purpose, knowledge_base_id=model.knowledge_base_id, state=ModelState.ACTIVE
        )
    )
    for old in previous:
        old.state, old.retired_at, old.retired_by = ModelState.RETIRED, now, actor if actor is not None else None
        old.save(update_fields=["state", "retired_at", "retired_by"])
    model.state, model.activated_at = ModelState.ACTIVE, now
    model.activated_by = actor if actor is not None else None
    model.save(update_fields=["state", "activated_at", "activated_by"])
    audit(
        **_system(actor),
        action="ml.model_activated",
        target=model,
        details={
            "purpose": model.purpose,
            "version": model.version,
            "sha256": model.sha256,
            "replaced_versions": [old.version for old in previous],
            "macro_f1": primary_score(model),
            "baseline_macro_f1": baseline_score(model),
            "reason": reason[:200],
        },
    )
    from portal.ml import tasks

    transaction.on_commit(lambda: tasks.after_activation_queue(model.purpose))
    return model


@transaction.atomic
def model_retire(*, actor: Actor, model: ModelVersion) -> ModelVersion:
    """Take a model out of use (the baseline answers until another is activated)."""
    _require(actor, ACTIVATE_PERMISSION, ERROR_NO_ACTIVATE)
    model = ModelVersion.objects.select_for_update().get(pk=model.pk)
    if model.state == ModelState.RETIRED:
        raise ValidationError(ERROR_NOT_ACTIVE_OR_CANDIDATE)
    was = model.state
    model.state, model.retired_at = ModelState.RETIRED, timezone.now()
    model.retired_by = actor if actor is not None else None
    model.save(update_fields=["state", "retired_at", "retired_by"])
    if model.purpose in CUSTOMER_PURPOSES:
        CustomerPrediction.objects.filter(model_version=model).delete()  # nobody is shown a retired model's guess
    audit(
        **_system(actor),
        action="ml.model_retired",
        target=model,
        details={"purpose": model.purpose, "version": model.version, "was": was},
    )
    return model


@transaction.atomic
def model_load_failure_record(*, model_id: int, reason: str) -> None:
    """A model's file could not be used (hash mismatch, unreadable): shown on the models page; the
    baseline answers meanwhile."""
    ModelVersion.objects.filter(pk=model_id).update(load_error=reason[:1000], load_error_at=timezone.now())
    audit(
        actor=None,
        actor_username="system",
        action="ml.model_load_failed",
        object_type="ml.modelversion",
        object_id=model_id,
        outcome=Outcome.ERROR,
        details={"reason": reason[:300]},
    )


# ---- task labels ---------------------------------------------------------------------------------------
@transaction.atomic
def task_label_set(*, actor: Actor, message_id: int, task_type: str) -> TaskLabel:
    """An administrator's correction of a question's task type (training data for the task router)."""
    from portal.assistant.selectors import questions_for_training
    from portal.routing.types import TASK_TYPES

    _require(actor, RELABEL_PERMISSION, ERROR_NO_RELABEL)
    if task_type not in TASK_TYPES:
        raise ValidationError(ERROR_UNKNOWN_TASK_TYPE.format(task_type=task_type))
    question = questions_for_training(message_ids=[message_id], limit=1)
    if not question:
        raise ValidationError("No such question.")
    label, created = TaskLabel.objects.update_or_create(
        message_id=message_id,
        defaults={"task_type": task_type, "source": LabelSource.RELABEL, "created_by": actor, "text": ""},
    )
    audit(
        **_system(actor),
        action="ml.question_relabelled",
        object_type="assistant.message",
        object_id=message_id,
        details={"task_type": task_type, "routed_as": question[0].route_task_type, "new": created},
    )
    return label


@transaction.atomic
def demo_task_labels_ensure(*, examples: list[tuple[str, str]]) -> int:
    """The shipped example questions (demo setup), once."""
    if TaskLabel.objects.filter(source=LabelSource.DEMO).exists():
        return 0
    TaskLabel.objects.bulk_create(
        [TaskLabel(text=text, task_type=task, source=LabelSource.DEMO) for text, task in examples]
    )
    audit(
        actor=None,
        actor_username="system",
        action="ml.demo_labels_created",
        object_type="ml.tasklabel",
        details={"examples": len(examples), "by_task_type": dict(Counter(task for _, task in examples))},
    )
    return len(examples)


# ---- passage flags ---------------------------------------------------------------------------------------
@transaction.atomic
def flag_review(*, actor: Actor, flag: PassageFlag, verdict: str) -> PassageFlag:
    """A governance officer confirms or dismisses a flag; the verdict becomes a training label."""
    _require(actor, REVIEW_PERMISSION, ERROR_NO_REVIEW)
    if verdict not in (FlagStatus.CONFIRMED, FlagStatus.DISMISSED):
        raise ValidationError(ERROR_BAD_VERDICT)
    flag = PassageFlag.objects.select_for_update().get(pk=flag.pk)
    if flag.status != FlagStatus.OPEN:
        raise ValidationError(ERROR_REVIEWED)
    flag.status, flag.reviewed_by, flag.reviewed_at = verdict, actor, timezone.now()
    flag.save(update_fields=["status", "reviewed_by", "reviewed_at"])
    audit(
        **_system(actor),
        action="ml.flag_reviewed",
        target=flag,
        details={
            "kind": flag.kind,
            "verdict": verdict,
            "chunk_id": flag.chunk_id,
            "document_id": flag.document_id,
            "base_label": flag.base_label,
            "predicted_label": flag.predicted_label,
        },
    )
    return flag


def document_scan(*, document_id: int) -> dict[str, int]:
    """Score a document's searchable passages with the active sensitivity and injection models: a label
    suggestion for the document (never lower than its knowledge base's) and flags for officers."""
    from knowledge.selectors import labelled_chunks

    chunks = labelled_chunks(document_id=document_id)
    return passages_scan(chunks=chunks)


def passages_scan(*, chunks: list[Any]) -> dict[str, int]:
    """Flags for these passages (knowledge.selectors.LabelledChunk) from the active models; idempotent."""
    import numpy as np

    from portal.ml.predict import active_model, text_scores

    counts: Counter[str] = Counter()
    if not chunks:
        return dict(counts)
    texts = [chunk.text for chunk in chunks]
    embeddings = np.asarray([chunk.embedding or [0.0] * 384 for chunk in chunks], dtype=np.float32)
    sensitivity = active_model(Purpose.SENSITIVITY)
    injection = active_model(Purpose.INJECTION)
    flags: list[PassageFlag] = []
    by_document: dict[int, list[tuple[str, float]]] = {}
    if sensitivity is not None:
        scores = _unseen_scores(sensitivity, chunks, text_scores(sensitivity, texts, embeddings))
        for chunk, probabilities in zip(chunks, scores, strict=True):
            top = max(probabilities, key=probabilities.__getitem__)
            by_document.setdefault(chunk.document_id, []).append((top, probabilities[top]))
            higher = {
                label: p
                for label, p in probabilities.items()
                if LABEL_RANK.get(label, 0) > LABEL_RANK.get(chunk.label, 0)
            }
            probability = sum(higher.values())
            label = max(higher, key=higher.__getitem__) if higher else chunk.label
            if higher and probability >= FLAG_PROBABILITY:
                flags.append(
                    PassageFlag(
                        chunk_id=chunk.chunk_id,
                        document_id=chunk.document_id,
                        kind=FlagKind.SENSITIVITY,
                        base_label=chunk.label,
                        predicted_label=label,
                        probability=round(probability, 4),
                        model_version=sensitivity.version,
                    )
                )
    if injection is not None:
        for chunk, (_, _, injection_scores) in zip(chunks, text_scores(injection, texts, None), strict=True):
            if injection_scores.get("injection", 0.0) >= FLAG_PROBABILITY:
                flags.append(
                    PassageFlag(
                        chunk_id=chunk.chunk_id,
                        document_id=chunk.document_id,
                        kind=FlagKind.INJECTION,
                        base_label=chunk.label,
                        predicted_label="injection",
                        probability=round(injection_scores["injection"], 4),
                        model_version=injection.version,
                    )
                )
    base = {chunk.document_id: chunk.label for chunk in chunks}
    flagged: Counter[int] = Counter(flag.document_id for flag in flags if flag.kind == FlagKind.SENSITIVITY)
    return _flags_store(
        flags=flags, by_document=by_document, base=base, flagged=flagged, model=sensitivity, chunks=len(chunks)
    )


def _unseen_scores(model: Any, chunks: list[Any], scores: list[tuple[str, float, Any]]) -> list[dict[str, float]]:
    """The model's probabilities per passage; for passages it was trained on, the out-of-fold ones."""
    artifact = model.artifact
    labels = artifact["labels"]
    oof: dict[int, dict[str, float]] = {}
    if "oof_ids" in artifact:
        for chunk_id, row in zip(artifact["oof_ids"], artifact["oof_probabilities"], strict=True):
            oof[int(chunk_id)] = {label: float(p) for label, p in zip(labels, row, strict=True)}
    return [oof.get(chunk.chunk_id, probabilities) for chunk, (_, _, probabilities) in zip(chunks, scores, strict=True)]


@transaction.atomic
def _flags_store(
    *,
    flags: list[PassageFlag],
    by_document: dict[int, list[tuple[str, float]]],
    base: dict[int, str],
    flagged: Counter[int],
    model: Any,
    chunks: int,
) -> dict[str, int]:
    created = PassageFlag.objects.bulk_create(flags, ignore_conflicts=True)  # a reviewed flag is kept as it is
    for document_id, scores in by_document.items():
        label, probability = _document_label(scores, base[document_id])
        DocumentSuggestion.objects.update_or_create(
            document_id=document_id,
            defaults={
                "base_label": base[document_id],
                "suggested_label": label,
                "probability": probability,
                "flagged_passages": flagged.get(document_id, 0),
                "model_version": model.version if model else None,
            },
        )
    counts = {
        "passages": chunks,
        "documents": len(base),
        "sensitivity_flags": sum(1 for flag in flags if flag.kind == FlagKind.SENSITIVITY),
        "injection_flags": sum(1 for flag in flags if flag.kind == FlagKind.INJECTION),
        "suggestions": len(by_document),
        "stored": len(created),
    }
    audit(
        actor=None,
        actor_username="system",
        action="ml.passages_scanned",
        object_type="knowledge.document",
        object_id=next(iter(base)) if len(base) == 1 else "",
        details={**counts, "document_ids": sorted(base)[:200]},
    )
    return counts


def _document_label(scores: list[tuple[str, float]], base: str) -> tuple[str, float]:
    """The most sensitive label that a quarter of the passages (or one confident passage) carry; never
    lower than the base label: the model suggests raising, it never lowers by itself."""
    best, best_probability = base, 0.0
    for label in sorted(LABEL_RANK, key=LABEL_RANK.__getitem__):
        hits = [p for predicted, p in scores if predicted == label]
        if hits and (len(hits) >= max(1, len(scores) // 4) or max(hits) >= 0.9):
            best, best_probability = label, max(hits)
    if LABEL_RANK.get(best, 0) <= LABEL_RANK.get(base, 0):
        return base, round(best_probability, 4)
    return best, round(best_probability, 4)


# ---- customer predictions ----------------------------------------------------------------------------------
def customer_predictions_refresh(*, purpose: str, customer_ids: list[int] | None = None) -> int:
    """Predictions (with top reasons) of the active model for every customer, stored and audited as one batch."""
    import numpy as np

    from portal.customers.selectors import customer_histories
    from portal.ml import customer_features as cf
    from portal.ml.predict import active_model
    from portal.ml.training import customer_probabilities

    loaded = active_model(purpose)
    if loaded is None:
        return 0
    now = timezone.now()
    histories = customer_histories(customer_ids=customer_ids)
    if not histories:
        return 0
    rows = np.asarray([cf.features_at(h.tier, h.interactions, now) for h in histories], dtype=np.float64)
    probabilities = customer_probabilities(loaded.artifact, rows)
    classifier, scaler, labels = loaded.artifact["classifier"], loaded.artifact["scaler"], loaded.artifact["labels"]
    scaled = scaler.transform(rows)
    predictions = []
    for history, values, scaled_row, row in zip(histories, rows, scaled, probabilities, strict=True):
        best = int(np.argmax(row))
        label = labels[best]
        classes = list(classifier.classes_)
        if len(classes) == 2:
            weights = classifier.coef_[0] * (1 if classes.index(label) == 1 else -1)
        else:
            weights = classifier.coef_[classes.index(label)]
        reasons = cf.top_reasons(values.tolist(), (weights * scaled_row).tolist())
        predictions.append(
            CustomerPrediction(
                customer_id=history.customer_id,
                purpose=purpose,
                model_version=loaded.version,
                label=label,
                probability=round(float(row[best]), 4),
                reasons=reasons,
            )
        )
    return _predictions_store(purpose=purpose, predictions=predictions, model=loaded.version)


@transaction.atomic
def _predictions_store(*, purpose: str, predictions: list[CustomerPrediction], model: ModelVersion) -> int:
    CustomerPrediction.objects.bulk_create(
        predictions,
        update_conflicts=True,
        unique_fields=["customer", "purpose"],
        update_fields=["model_version", "label", "probability", "reasons", "created_at"],
    )
    audit(
        actor=None,
        actor_username="system",
        action="ml.predictions_made",
        target=model,
        details={
            "purpose": purpose,
            "version": model.version,
            "customers": len(predictions),
            "labels": dict(Counter(p.label for p in predictions)),
        },
    )
    return len(predictions)
