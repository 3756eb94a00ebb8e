"""The retrieval ranker: one local model per knowledge base, trained on queries generated from the base's own
chunks (knowledge.ranking.training_set; no labels from anyone, no cloud model), registered and versioned
like every local model (a skops file whose SHA-256 the registry checks), and retrained by the worker as
the base's documents change. Knowledge asks for it through the provider registered in MlConfig.ready().

The model is a logistic regression over the candidates' features (both legs' scores and ranks, term
matches in text, title and headings, term proximity, position, page, length), pointwise on the source chunk
against the hard negatives its own search returned. It is activated only when it beats plain fusion on
the held-out generated queries (documents held out whole); otherwise fusion keeps answering.

Once people's questions are enough to judge by (MIN_REAL_VALIDATION held out), a second, one-number model is
fitted beside it on them alone: the scale of the fusion's lexical weight for this base
(knowledge.ranking.FusionScaleScorer). Generated queries cannot teach it (they share the text's words, so
they always ask for more BM25); people's questions can: staff who paraphrase (an FAQ base) want less of it,
staff who quote the documents' terms more. Whichever of the two beats fusion by more on the held-out real
questions goes live; neither, and fusion answers.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.db.models import Max

from audit.services import audit
from knowledge import ranking
from portal.ml import registry
from portal.ml.models import ModelState, ModelVersion, Purpose

logger = logging.getLogger(__name__)
ALGORITHM = "logistic regression over fused candidates (scikit-learn), queries generated from the base"
VERSION_LOCK_KEY = 0x52414E4B  # "RANK": the advisory lock held while a ranker's version number is taken
PROVIDER_TTL_SECONDS = 30.0  # a newly activated ranker is used by every process within this time
# A real question with people's signals (the passages a helpful answer cited) weighs as much as this many
# generated queries in training: it is what the ranker is for, and there are far fewer of them.
REAL_WEIGHT = 5.0
# Held-out real questions needed before they, not the generated queries, decide whether the ranker goes live.
MIN_REAL_VALIDATION = 20
# New signal questions since the last training that make the periodic refresh retrain a base's ranker.
SIGNALS_RETRAIN_STEP = 20
# The lexical scales a base's fusion may learn from its real questions (1: fusion as it is).
LEXICAL_SCALES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
FUSION_SCALE_ALGORITHM = "adaptive fusion with a lexical scale learned from the base's real questions"


def _mrr(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray, k: int = 10) -> float:
    values = []
    for group in np.unique(groups):
        mask = groups == group
        order = np.argsort(-scores[mask], kind="stable")
        hits = np.nonzero(labels[mask][order] > 0)[0]
        values.append(1.0 / (hits[0] + 1) if hits.size and hits[0] < k else 0.0)
    return float(np.mean(values)) if values else 0.0


def _fusion_scale_fit(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, mask: np.ndarray) -> float:
    """The LEXICAL_SCALES value whose fusion ranks the `mask`ed questions best (MRR@10); on a tie the one
    nearest 1, fusion as it is."""
    best_scale, best_mrr = 1.0, -1.0
    for scale in sorted(LEXICAL_SCALES, key=lambda value: abs(value - 1.0)):
        value = _mrr(ranking.FusionScaleScorer(scale)(features[mask]), labels[mask], groups[mask])
        if value > best_mrr + 1e-9:
            best_scale, best_mrr = scale, value
    return best_scale


def _fit(features: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    model = Pipeline(
        [("scale", StandardScaler()), ("model", LogisticRegression(C=0.5, class_weight="balanced", max_iter=500))]
    )
    model.fit(features, labels, model__sample_weight=weights)
    return model


def retrieval_ranker_train(*, knowledge_base_id: int, force: bool = False) -> dict[str, Any]:
    """Train the base's ranker; register it; activate it if it beats fusion on held-out queries.

    Idempotent: when the latest ranker (live or candidate) was trained on the base as it is now, with fewer
    than SIGNALS_RETRAIN_STEP new signals since, nothing is trained (unless `force`). Returns what happened,
    for the task's result and eval_retrieval.
    """
    started = time.perf_counter()
    # The base's latest ranker, live or not: one trained on the base as it is now, with about the signals there
    # are now, is not trained again (a candidate that lost to fusion would lose again on the same data).
    latest = (
        ModelVersion.objects.filter(purpose=Purpose.RETRIEVAL_RANKER, knowledge_base_id=knowledge_base_id)
        .order_by("-version")
        .first()
    )
    signals = ranking.signals_for(knowledge_base_id)
    if (
        not force
        and latest is not None
        and latest.state in (ModelState.ACTIVE, ModelState.CANDIDATE)
        and latest.training_data.get("signature") == ranking.base_signature(knowledge_base_id)
        and len(signals) - int(latest.training_data.get("signal_questions_seen", 0)) < SIGNALS_RETRAIN_STEP
    ):
        return {"status": "unchanged", "version": latest.version}
    try:
        data = ranking.training_set(knowledge_base_id, signals=signals)
    except ranking.NotEnoughChunks as error:
        return {"status": "fallback to fusion", "reason": str(error)}
    train, valid = ~data.held_out, data.held_out
    if data.queries < 20 or not train.any() or not valid.any() or data.labels[train].sum() < 10:
        return {"status": "fallback to fusion", "reason": f"only {data.queries} usable generated queries"}
    columns = [ranking.FEATURE_NAMES.index(name) for name in ranking.MODEL_FEATURES]
    inputs = data.features[:, columns]
    weights = np.where(data.real, REAL_WEIGHT, 1.0)
    model = _fit(inputs[train], data.labels[train], weights[train])
    fused_column = ranking.FEATURE_NAMES.index("fused_score")
    scores, fused = model.decision_function(inputs), data.features[:, fused_column]

    def mrr_on(mask: np.ndarray, values: np.ndarray) -> float:
        return round(_mrr(values[mask], data.labels[mask], data.groups[mask]), 4)

    generated_valid, real_valid = valid & ~data.real, valid & data.real
    real_validation = int(np.unique(data.groups[real_valid]).size)
    validation: dict[str, dict[str, Any]] = {
        "model": {"mrr@10": mrr_on(generated_valid, scores)},
        "baseline": {"name": "adaptive fusion", "mrr@10": mrr_on(generated_valid, fused)},
    }
    if real_validation:
        validation["model_on_real_questions"] = {"mrr@10": mrr_on(real_valid, scores), "questions": real_validation}
        validation["baseline_on_real_questions"] = {"name": "adaptive fusion", "mrr@10": mrr_on(real_valid, fused)}
    # Real questions decide once there are enough of them: a ranker that orders generated queries well but
    # people's questions worse (generated queries share the text's words; questions often do not) stays off.
    decided_on = "real questions" if real_validation >= MIN_REAL_VALIDATION else "generated queries"
    won = (
        validation["model_on_real_questions"]["mrr@10"] > validation["baseline_on_real_questions"]["mrr@10"]
        if decided_on == "real questions"
        else validation["model"]["mrr@10"] > validation["baseline"]["mrr@10"]
    )
    kind = "logistic"
    if decided_on == "real questions" and np.unique(data.groups[train & data.real]).size >= MIN_REAL_VALIDATION:
        # the fusion's lexical scale, chosen on the real questions of the training split, judged on the held-out
        scale = _fusion_scale_fit(data.features, data.labels, data.groups, train & data.real)
        scale_mrr = mrr_on(real_valid, ranking.FusionScaleScorer(scale)(data.features))
        validation["fusion_scale_on_real_questions"] = {"mrr@10": scale_mrr, "lexical_scale": scale}
        model_mrr = validation["model_on_real_questions"]["mrr@10"]
        if scale != 1.0 and scale_mrr > validation["baseline_on_real_questions"]["mrr@10"] and scale_mrr > model_mrr:
            kind, won = "fusion_scale", True
    # what goes live is fitted on every query, the held-out ones included
    if kind == "fusion_scale":
        every_real = _fusion_scale_fit(data.features, data.labels, data.groups, data.real)
        artifact: dict[str, Any] = {
            "kind": "fusion_scale",
            "lexical_scale": every_real,
            "features": sorted(ranking.FusionScaleScorer.features),
        }
        algorithm, parameters = FUSION_SCALE_ALGORITHM, {"lexical_scale": every_real, "scales": list(LEXICAL_SCALES)}
    else:
        final = _fit(inputs, data.labels, weights)
        artifact = {"pipeline": final, "features": list(ranking.MODEL_FEATURES)}
        algorithm, parameters = ALGORITHM, {"features": list(ranking.MODEL_FEATURES), "C": 0.5}
    seconds = time.perf_counter() - started
    training_data = {
        "generated_queries": data.queries,
        "real_questions": data.real_queries,
        "signal_questions_seen": len(signals),
        "validation_queries": int(np.unique(data.groups[generated_valid]).size),
        "validation_real_questions": real_validation,
        "candidates": int(data.labels.size),
        "chunks": data.chunks,
        "query_kinds": data.kinds,
        "signature": data.signature,
        "source": "queries generated from the base's chunks, and questions whose helpful answers cited the base's "
        "passages (no evaluation queries)",
        "decided_on": decided_on,
        "kind": kind,
    }
    model_version = _register(
        knowledge_base_id=knowledge_base_id,
        artifact=artifact,
        training_data=training_data,
        metrics=validation,
        seconds=seconds,
        algorithm=algorithm,
        parameters=parameters,
    )
    if won:
        from portal.ml.services import model_activate

        model_activate(actor=None, model=model_version, reason=f"beats fusion on held-out {decided_on}")
    provider_cache_clear()
    report: dict[str, Any] = {
        "status": "activated" if won else "candidate (fusion is better)",
        "kind": kind,
        "version": model_version.version,
        "generated_queries": data.queries,
        "real_questions": data.real_queries,
        "decided_on": decided_on,
        "validation_mrr@10": validation["model"]["mrr@10"],
        "fusion_validation_mrr@10": validation["baseline"]["mrr@10"],
        "seconds": round(seconds, 1),
    }
    if real_validation:
        report["real_validation_mrr@10"] = validation["model_on_real_questions"]["mrr@10"]
        report["fusion_real_validation_mrr@10"] = validation["baseline_on_real_questions"]["mrr@10"]
    if "fusion_scale_on_real_questions" in validation:
        report["fusion_scale_real_validation_mrr@10"] = validation["fusion_scale_on_real_questions"]["mrr@10"]
        report["lexical_scale"] = parameters.get(
            "lexical_scale", validation["fusion_scale_on_real_questions"]["lexical_scale"]
        )
    return report


@transaction.atomic
def _register(
    *,
    knowledge_base_id: int,
    artifact: dict[str, Any],
    training_data: dict[str, Any],
    metrics: dict[str, Any],
    seconds: float,
    algorithm: str = ALGORITHM,
    parameters: dict[str, Any] | None = None,
) -> ModelVersion:
    # rankers of several bases may finish at once: their version numbers are taken one after the other
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [VERSION_LOCK_KEY])
    number = (ModelVersion.objects.filter(purpose=Purpose.RETRIEVAL_RANKER).aggregate(n=Max("version"))["n"] or 0) + 1
    stem = f"{Purpose.RETRIEVAL_RANKER}-kb{knowledge_base_id}-v{number}"
    saved = registry.artifact_save(artifact=artifact, stem=stem)
    model = ModelVersion(
        purpose=Purpose.RETRIEVAL_RANKER,
        version=number,
        knowledge_base_id=knowledge_base_id,
        state=ModelState.CANDIDATE,
        algorithm=algorithm,
        file_name=saved.file_name,
        sha256=saved.sha256,
        size_bytes=saved.size_bytes,
        training_data=training_data,
        metrics=metrics,
        parameters=parameters if parameters is not None else {"features": list(ranking.MODEL_FEATURES), "C": 0.5},
        training_seconds=round(seconds, 2),
    )
    model.full_clean()
    model.save()
    audit(
        actor=None,
        actor_username="system",
        action="ml.model_trained",
        target=model,
        details={
            "purpose": Purpose.RETRIEVAL_RANKER,
            "version": number,
            "knowledge_base_id": knowledge_base_id,
            "sha256": saved.sha256,
            "kind": training_data.get("kind", "logistic"),
            "examples": training_data["generated_queries"],
            "mrr@10": metrics["model"]["mrr@10"],
            "baseline_mrr@10": metrics["baseline"]["mrr@10"],
            "seconds": round(seconds, 2),
        },
    )
    return model


# ---- the provider knowledge asks at search time ----------------------------------------------------
_cache_lock = threading.Lock()
_provider_cache: dict[int, tuple[float, ranking.Scorer | None]] = {}


def provider_cache_clear() -> None:
    with _cache_lock:
        _provider_cache.clear()


def scorer_for(knowledge_base_id: int) -> ranking.Scorer | None:
    """The active ranker of the base as a scoring function, or None (fusion answers): no ranker, or its file
    is missing or tampered with (recorded on the registry row by predict's failure report)."""
    now = time.monotonic()
    with _cache_lock:
        cached = _provider_cache.get(knowledge_base_id)
        if cached is not None and cached[0] > now:
            return cached[1]
    scorer = _load_scorer(knowledge_base_id)
    with _cache_lock:
        _provider_cache[knowledge_base_id] = (now + PROVIDER_TTL_SECONDS, scorer)
    return scorer


def _load_scorer(knowledge_base_id: int) -> ranking.Scorer | None:
    from portal.ml.predict import _report_failure

    version = (
        ModelVersion.objects.filter(
            purpose=Purpose.RETRIEVAL_RANKER, knowledge_base_id=knowledge_base_id, state=ModelState.ACTIVE
        )
        .only("pk", "purpose", "version", "file_name", "sha256")
        .first()
    )
    if version is None:
        return None
    try:
        artifact = registry.cached_load(model_id=version.pk, file_name=version.file_name, sha256=version.sha256)
    except registry.ModelLoadError as error:
        _report_failure(version, str(error))
        return None
    names = artifact.get("features")
    if not isinstance(names, list) or not set(names) <= set(ranking.FEATURE_NAMES):
        return None  # trained on features this portal no longer computes: fusion until it is retrained
    if artifact.get("kind") == "fusion_scale":
        try:
            return ranking.FusionScaleScorer(float(artifact["lexical_scale"]))
        except (KeyError, TypeError, ValueError):
            return None
    columns = [ranking.FEATURE_NAMES.index(name) for name in names]
    return _linear_scorer(artifact["pipeline"], columns)


def _linear_scorer(pipeline: Any, columns: list[int]) -> ranking.Scorer:
    """The pipeline's decision function (standard scaling, then the logistic regression's linear score) as
    one matrix product: the same scores, without scikit-learn's input checks on each call (most of the
    0.8 ms it took to score a search's 30 candidates). Any other pipeline is called as it is."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    steps: dict[str, Any] = dict(getattr(pipeline, "named_steps", {}))
    scale: Any = steps.get("scale")
    model: Any = steps.get("model")
    linear = (
        [name for name, _ in getattr(pipeline, "steps", [])] == ["scale", "model"]
        and isinstance(scale, StandardScaler)
        and bool(scale.with_mean and scale.with_std)
        and isinstance(model, LogisticRegression)
        and model.coef_.shape[0] == 1
    )
    if not linear:

        def checked(features: np.ndarray) -> np.ndarray:
            return np.asarray(pipeline.decision_function(features[:, columns]), dtype=np.float64)

        return checked
    # (x - mean) / scale . coef + intercept, with the scaling folded into the weights
    mean = np.asarray(scale.mean_, dtype=np.float64)
    weights = np.asarray(model.coef_[0], dtype=np.float64) / np.asarray(scale.scale_, dtype=np.float64)
    intercept = float(model.intercept_[0]) - float(mean @ weights)
    return LinearScorer(weights, intercept, columns)


class LinearScorer:
    """Scores FEATURE_NAMES rows as weights . row[columns] + intercept; `features` names the columns read
    (knowledge.ranking.rerank then computes only those it must)."""

    def __init__(self, weights: np.ndarray, intercept: float, columns: list[int]) -> None:
        self.weights, self.intercept, self.columns = weights, intercept, np.asarray(columns)
        self.features = frozenset(ranking.FEATURE_NAMES[column] for column in columns)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        scores: np.ndarray = np.asarray(features[:, self.columns], dtype=np.float64) @ self.weights + self.intercept
        return scores
