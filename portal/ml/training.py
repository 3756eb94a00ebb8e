"""Training of each purpose's model: data set, held-out split, fit, metrics against the baseline (and
against the model active now, on the same split). Runs in the Celery worker (portal/ml/tasks.py).

Every purpose follows the same steps so their registry rows read alike:
    dataset -> enough labels? -> split -> fit -> held-out metrics (model, baseline, active model)
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone

from portal.ml import customer_features as cf
from portal.ml import features
from portal.ml.metrics import binary_auc, classification_metrics, majority_baseline
from portal.ml.models import Purpose

logger = logging.getLogger(__name__)
Progress = Callable[[int, str], None]

MIN_EXAMPLES = 20
MIN_PER_CLASS = 5
TEST_SHARE = 0.25
SEED = 20261201
SENSITIVITY_LABELS = ("public", "internal", "confidential", "local_only")
INJECTION_LABELS = ("benign", "injection")
CHURN_LABELS = ("active", "churn")
ERROR_TOO_FEW = "Only {count} labelled examples; at least {needed} are needed ({more} more)."
ERROR_ONE_CLASS = "Only one class has {per_class} or more examples ({classes}); at least two are needed. {hint}"
ERROR_FEW_PER_CLASS_HINT = "Closest: {label} with {count} ({more} more needed)."
OWN_INJECTION_EXAMPLES = Path(__file__).resolve().parent / "data" / "injection_examples.jsonl"


class NotEnoughData(Exception):
    """Too few labels to train; the message says how many more are needed."""


@dataclass
class Dataset:
    labels: list[str]
    texts: list[str] = field(default_factory=list)
    embeddings: np.ndarray | None = None
    numeric: np.ndarray | None = None
    groups: list[int] | None = None
    ids: list[int] = field(default_factory=list)  # the examples' own ids (chunk ids), where they have one
    sources: Counter[str] = field(default_factory=Counter)
    dates: list[dt.datetime] = field(default_factory=list)
    source_query: str = ""
    dropped_classes: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        dates = sorted(self.dates)
        return {
            "examples": len(self.labels),
            "label_distribution": dict(sorted(Counter(self.labels).items())),
            "sources": dict(sorted(self.sources.items())),
            "date_range": [dates[0].isoformat(), dates[-1].isoformat()] if dates else None,
            "source_query": self.source_query,
            "dropped_classes": self.dropped_classes,
        }


@dataclass
class Trained:
    artifact: dict[str, Any]
    metrics: dict[str, Any]
    training_data: dict[str, Any]
    algorithm: str
    parameters: dict[str, Any]


def _check_enough(dataset: Dataset, labels: Sequence[str]) -> list[str]:
    """The classes to train on; NotEnoughData with how many more are needed otherwise."""
    counts = Counter(dataset.labels)
    if len(dataset.labels) < MIN_EXAMPLES:
        more = MIN_EXAMPLES - len(dataset.labels)
        raise NotEnoughData(ERROR_TOO_FEW.format(count=len(dataset.labels), needed=MIN_EXAMPLES, more=more))
    kept = [label for label in labels if counts.get(label, 0) >= MIN_PER_CLASS]
    if len(kept) < 2:
        others = sorted(((count, label) for label, count in counts.items() if label not in kept), reverse=True)
        hint = ""
        if others:
            count, label = others[0]
            hint = ERROR_FEW_PER_CLASS_HINT.format(label=label, count=count, more=MIN_PER_CLASS - count)
        raise NotEnoughData(
            ERROR_ONE_CLASS.format(per_class=MIN_PER_CLASS, classes=", ".join(kept) or "none", hint=hint).strip()
        )
    dataset.dropped_classes = {label: counts[label] for label in counts if label not in kept}
    return kept


def _keep(dataset: Dataset, kept: Sequence[str]) -> Dataset:
    rows = [index for index, label in enumerate(dataset.labels) if label in kept]
    return Dataset(
        labels=[dataset.labels[i] for i in rows],
        texts=[dataset.texts[i] for i in rows] if dataset.texts else [],
        embeddings=dataset.embeddings[rows] if dataset.embeddings is not None else None,
        numeric=dataset.numeric[rows] if dataset.numeric is not None else None,
        groups=[dataset.groups[i] for i in rows] if dataset.groups is not None else None,
        ids=[dataset.ids[i] for i in rows] if dataset.ids else [],
        sources=dataset.sources,
        dates=dataset.dates,
        source_query=dataset.source_query,
        dropped_classes=dataset.dropped_classes,
    )


def split(dataset: Dataset, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Held-out split: stratified by label, or by customer when examples share one (no leakage)."""
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    indices = np.arange(len(dataset.labels))
    if dataset.groups is not None:
        splitter = GroupShuffleSplit(n_splits=1, test_size=TEST_SHARE, random_state=seed)
        train, test = next(splitter.split(indices, dataset.labels, groups=dataset.groups))
        return train, test
    train, test = train_test_split(indices, test_size=TEST_SHARE, random_state=seed, stratify=dataset.labels)
    return np.asarray(train), np.asarray(test)


def _classifier(c: float = 4.0) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=3000, class_weight="balanced")


# ---- text models (task router, sensitivity, injection) -------------------------------------------
def _fit_text(
    dataset: Dataset, train: np.ndarray, labels: Sequence[str], *, char_ngrams: bool, c: float = 4.0
) -> dict[str, Any]:
    texts = [dataset.texts[i] for i in train]
    tfidf = features.word_vectorizer().fit(texts)
    char_tfidf = features.char_vectorizer().fit(texts) if char_ngrams else None
    artifact: dict[str, Any] = {
        "format": 1,
        "tfidf": tfidf,
        "char_tfidf": char_tfidf,
        "uses_embedding": dataset.embeddings is not None,
        "embedding_weight": features.EMBEDDING_WEIGHT,
        "labels": list(labels),
    }
    matrix = features.artifact_features(
        artifact, texts, dataset.embeddings[train] if dataset.embeddings is not None else None
    )
    classifier = _classifier(c).fit(matrix, [dataset.labels[i] for i in train])
    artifact["classifier"] = classifier
    return artifact


def text_predict(artifact: dict[str, Any], texts: Sequence[str], embeddings: np.ndarray | None) -> np.ndarray:
    """Probabilities over artifact["labels"] (columns in that order)."""
    classifier = artifact["classifier"]
    probabilities = features.linear_probabilities(artifact, texts, embeddings)
    order = [
        list(classifier.classes_).index(label) if label in classifier.classes_ else -1 for label in artifact["labels"]
    ]
    result = np.zeros((len(texts), len(artifact["labels"])))
    for column, source in enumerate(order):
        if source >= 0:
            result[:, column] = probabilities[:, source]
    return result


def _evaluate_text(
    artifact: dict[str, Any], dataset: Dataset, test: np.ndarray, labels: Sequence[str]
) -> dict[str, Any]:
    texts = [dataset.texts[i] for i in test]
    embeddings = dataset.embeddings[test] if dataset.embeddings is not None and artifact.get("uses_embedding") else None
    if artifact.get("uses_embedding") and embeddings is None:
        embeddings = features.embed(texts)
    probabilities = text_predict(artifact, texts, embeddings)
    model_labels = artifact["labels"]
    predicted = [model_labels[int(row.argmax())] for row in probabilities]
    truth = [dataset.labels[i] for i in test]
    aligned = np.zeros((len(texts), len(labels)))
    for column, label in enumerate(labels):
        if label in model_labels:
            aligned[:, column] = probabilities[:, model_labels.index(label)]
    metrics = classification_metrics(truth, predicted, labels, aligned)
    if len(labels) == 2:
        positive = labels[1]
        metrics["auc"] = binary_auc([int(label == positive) for label in truth], aligned[:, 1].tolist())
    metrics["_predicted"] = predicted
    return metrics


def _strip_private(metrics: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in metrics.items() if not key.startswith("_")}


# ---- data sets ---------------------------------------------------------------------------------------
def task_router_dataset() -> Dataset:
    """Labelled questions: an administrator's relabel wins, then the fixed task type of the profile the
    question was asked through, then feedback (a poor rating on an economy answer: one tier up); plus the
    shipped demo examples."""
    from portal.assistant.selectors import questions_for_training
    from portal.ml.models import LabelSource, TaskLabel
    from portal.routing.selectors import task_tiers
    from portal.routing.types import TASK_TYPES, TIERS

    tiers = task_tiers()
    relabels = dict(TaskLabel.objects.filter(message__isnull=False).values_list("message_id", "task_type"))
    dataset = Dataset(
        labels=[],
        source_query=(
            "questions (assistant.Message, role user): relabels (ml.TaskLabel), else the profile's fixed task type, "
            "else a poor rating on an economy-tier answer (one tier up); plus demo examples (ml.TaskLabel, source demo)"
        ),
    )
    for question in questions_for_training():
        label, source = "", ""
        if question.message_id in relabels:
            label, source = relabels[question.message_id], "relabel"
        elif question.profile_task_type in TASK_TYPES:
            label, source = question.profile_task_type, "profile"
        elif question.answer_feedback == -1 and question.route_tier == "economy":
            label, source = _one_tier_up(question.route_tier, tiers, TASK_TYPES, TIERS), "feedback"
        if label in TASK_TYPES:
            dataset.texts.append(question.text)
            dataset.labels.append(label)
            dataset.sources[source] += 1
            dataset.dates.append(question.created_at)
    for text, task_type, created_at in TaskLabel.objects.filter(
        source=LabelSource.DEMO, message__isnull=True
    ).values_list("text", "task_type", "created_at"):
        if task_type in TASK_TYPES and text:
            dataset.texts.append(text)
            dataset.labels.append(task_type)
            dataset.sources["demo"] += 1
            dataset.dates.append(created_at)
    return dataset


def _one_tier_up(tier: str, tiers: dict[str, str], task_types: Sequence[str], tier_order: Sequence[str]) -> str:
    """The task type of the cheapest tier above `tier`: where a poorly rated economy answer should go."""
    rank = tier_order.index(tier) if tier in tier_order else 0
    above = [
        (tier_order.index(tiers[t]), t)
        for t in task_types
        if tiers.get(t) in tier_order and tier_order.index(tiers[t]) > rank
    ]
    return min(above)[1] if above else ""


def sensitivity_dataset() -> Dataset:
    from knowledge.selectors import labelled_chunks
    from portal.ml.models import FlagKind, FlagStatus, PassageFlag

    corrections = {
        chunk_id: (predicted if status == FlagStatus.CONFIRMED else base)
        for chunk_id, status, predicted, base in PassageFlag.objects.filter(
            kind=FlagKind.SENSITIVITY, status__in=[FlagStatus.CONFIRMED, FlagStatus.DISMISSED]
        ).values_list("chunk_id", "status", "predicted_label", "base_label")
    }
    chunks = labelled_chunks()
    dataset = Dataset(
        labels=[],
        source_query=(
            "searchable chunks (knowledge.Chunk of each document's active generation) labelled with their knowledge "
            "base's classification; governance officers' reviews of flagged passages override it"
        ),
    )
    vectors = []
    for chunk in chunks:
        label = corrections.get(chunk.chunk_id, chunk.label)
        dataset.sources["officer review" if chunk.chunk_id in corrections else "knowledge base label"] += 1
        dataset.texts.append(chunk.text)
        dataset.ids.append(chunk.chunk_id)
        dataset.labels.append(label)
        vectors.append(chunk.embedding or [0.0] * 384)
    dataset.embeddings = np.asarray(vectors, dtype=np.float32) if vectors else None
    return dataset


def injection_dataset(path: str | None = None) -> Dataset:
    from portal.ml.models import FlagKind, FlagStatus, PassageFlag

    dataset = Dataset(labels=[])
    external = Path(path or settings.ML_INJECTION_DATASET or "")
    files = [(OWN_INJECTION_EXAMPLES, "portal's own examples")]
    if str(external) not in ("", ".") and external.is_file():
        files.insert(0, (external, external.name))
    for file_path, source in files:
        for line in file_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                dataset.texts.append(str(row["text"]))
                dataset.labels.append(INJECTION_LABELS[int(row["label"])])
                dataset.sources[source] += 1
    reviewed = PassageFlag.objects.filter(
        kind=FlagKind.INJECTION, status__in=[FlagStatus.CONFIRMED, FlagStatus.DISMISSED]
    ).values_list("chunk__text", "status")
    for text, status in reviewed:
        dataset.texts.append(text)
        dataset.labels.append("injection" if status == FlagStatus.CONFIRMED else "benign")
        dataset.sources["officer review"] += 1
    dataset.source_query = "labelled texts: " + ", ".join(sorted(dataset.sources))
    return dataset


def customer_dataset(purpose: str, churn_days: int) -> Dataset:
    """Examples cut from each customer's history at points in the past whose outcome is known by now."""
    from portal.customers.selectors import customer_histories

    now = timezone.now()
    rows: list[list[float]] = []
    groups: list[int] = []  # the customer of each example: the split keeps one customer's examples together
    dataset = Dataset(labels=[], groups=groups)
    for history in customer_histories():
        timeline = history.interactions
        if purpose == Purpose.CUSTOMER_NEXT_CHANNEL:
            for position in range(1, len(timeline)):
                at = timeline[position][0] - dt.timedelta(seconds=1)
                rows.append(cf.features_at(history.tier, timeline[:position], at))
                dataset.labels.append(timeline[position][1])
                groups.append(history.customer_id)
                dataset.dates.append(timeline[position][0])
            continue
        if not timeline:
            continue
        cutoff = timeline[0][0] + dt.timedelta(days=30)
        while cutoff + dt.timedelta(days=churn_days) <= now:
            before = [item for item in timeline if item[0] < cutoff]
            if before and (cutoff - before[-1][0]).days <= 2 * churn_days:  # long gone: not a decision any more
                after = any(cutoff <= item[0] < cutoff + dt.timedelta(days=churn_days) for item in timeline)
                rows.append(cf.features_at(history.tier, before, cutoff))
                dataset.labels.append("active" if after else "churn")
                groups.append(history.customer_id)
                dataset.dates.append(cutoff)
            cutoff += dt.timedelta(days=30)
    dataset.numeric = np.asarray(rows, dtype=np.float64) if rows else np.zeros((0, len(cf.FEATURE_NAMES)))
    dataset.sources["customer histories"] = len(dataset.labels)
    dataset.source_query = (
        "customers.Interaction per customer, cut at past points in time: the features use only what came before"
        + (
            f"; churn = no interaction within {churn_days} days"
            if purpose == Purpose.CUSTOMER_CHURN
            else "; label = the channel of the next interaction"
        )
    )
    return dataset


# ---- training per purpose ---------------------------------------------------------------------------
def train(
    *, purpose: str, parameters: dict[str, Any], progress: Progress, active: dict[str, Any] | None = None
) -> Trained:
    """Train a candidate for `purpose`; `active` is the artifact in use now, scored on the same split."""
    trainers = {
        Purpose.TASK_ROUTER: _train_task_router,
        Purpose.SENSITIVITY: _train_sensitivity,
        Purpose.INJECTION: _train_injection,
        Purpose.CUSTOMER_CHURN: _train_customer,
        Purpose.CUSTOMER_NEXT_CHANNEL: _train_customer,
    }
    return trainers[Purpose(purpose)](purpose=purpose, parameters=parameters, progress=progress, active=active)


def _text_trained(
    *,
    dataset: Dataset,
    labels: Sequence[str],
    progress: Progress,
    active: dict[str, Any] | None,
    char_ngrams: bool,
    algorithm: str,
    parameters: dict[str, Any],
    baseline: Callable[[list[int]], dict[str, Any]] | None = None,
) -> tuple[Trained, np.ndarray, dict[str, Any]]:
    kept = _check_enough(dataset, labels)
    dataset = _keep(dataset, kept)
    progress(40, "splitting and fitting")
    train_rows, test_rows = split(dataset)
    artifact = _fit_text(dataset, train_rows, kept, char_ngrams=char_ngrams)
    progress(70, "scoring the held-out split")
    model_metrics = _evaluate_text(artifact, dataset, test_rows, kept)
    metrics: dict[str, Any] = {
        "model": _strip_private(model_metrics),
        "split": {"train": int(len(train_rows)), "test": int(len(test_rows)), "seed": SEED, "test_share": TEST_SHARE},
    }
    if baseline is not None:
        metrics["baseline"] = baseline(test_rows.tolist())
    else:
        metrics["baseline"] = majority_baseline(
            [dataset.labels[i] for i in train_rows], [dataset.labels[i] for i in test_rows], kept
        )
        metrics["baseline"]["name"] = "majority class"
    if active is not None:
        progress(85, "scoring the active model on the same split")
        try:
            metrics["active"] = _strip_private(_evaluate_text(active, dataset, test_rows, kept))
        except Exception as error:  # noqa: BLE001 - an unusable active model is reported, not fatal
            metrics["active"] = {"error": type(error).__name__}
    trained = Trained(
        artifact=artifact, metrics=metrics, training_data=dataset.summary(), algorithm=algorithm, parameters=parameters
    )
    return trained, test_rows, model_metrics


def _train_task_router(
    *, purpose: str, parameters: dict[str, Any], progress: Progress, active: dict[str, Any] | None
) -> Trained:
    from portal.routing.classifier import classify
    from portal.routing.types import TASK_TYPES

    progress(5, "collecting labelled questions")
    dataset = task_router_dataset()
    _check_enough(dataset, TASK_TYPES)
    progress(15, f"embedding {len(dataset.texts)} questions with the local model")
    dataset.embeddings = features.embed(dataset.texts)
    kept = _check_enough(dataset, TASK_TYPES)

    def keyword_baseline(test_rows: list[int]) -> dict[str, Any]:
        kept_dataset = _keep(dataset, kept)
        truth = [kept_dataset.labels[i] for i in test_rows]
        predicted = [classify(kept_dataset.texts[i]).task_type for i in test_rows]
        metrics = classification_metrics(truth, predicted, kept)
        metrics["name"] = "keyword classifier"
        metrics["routing"] = routing_costs(predicted)
        return metrics

    trained, test_rows, model_metrics = _text_trained(
        dataset=dataset,
        labels=TASK_TYPES,
        progress=progress,
        active=active,
        char_ngrams=False,
        algorithm="logistic regression on word TF-IDF (1-2 grams) + all-MiniLM-L6-v2 embedding",
        parameters=parameters,
        baseline=keyword_baseline,
    )
    kept_dataset = _keep(dataset, kept)
    trained.metrics["model"]["routing"] = routing_costs(model_metrics["_predicted"])
    trained.metrics["truth_routing"] = routing_costs([kept_dataset.labels[i] for i in test_rows])
    return trained


def _train_sensitivity(
    *, purpose: str, parameters: dict[str, Any], progress: Progress, active: dict[str, Any] | None
) -> Trained:
    progress(5, "reading labelled passages")
    dataset = sensitivity_dataset()
    trained, _, _ = _text_trained(
        dataset=dataset,
        labels=SENSITIVITY_LABELS,
        progress=progress,
        active=active,
        char_ngrams=False,
        algorithm="logistic regression on word TF-IDF (1-2 grams) + the chunks' stored embeddings",
        parameters=parameters,
    )
    progress(90, "out-of-fold predictions for the passages it learned from")
    trained.artifact.update(out_of_fold(_keep(dataset, trained.artifact["labels"]), trained.artifact["labels"]))
    return trained


def out_of_fold(dataset: Dataset, labels: Sequence[str], folds: int = 5) -> dict[str, Any]:
    """For each training passage, the prediction of a model that did not see it.

    A model trained on a passage labelled with its knowledge base's label tends to repeat that label for
    it, so scanning the very passages it learned from would hide the ones that look more sensitive
    than their base (the salary table in a public base). The scan uses these predictions instead.
    """
    from sklearn.model_selection import StratifiedKFold

    smallest = min(Counter(dataset.labels).values())
    splitter = StratifiedKFold(n_splits=max(2, min(folds, smallest)), shuffle=True, random_state=SEED)
    probabilities = np.zeros((len(dataset.labels), len(labels)))
    for train_rows, test_rows in splitter.split(dataset.texts, dataset.labels):
        artifact = _fit_text(dataset, train_rows, labels, char_ngrams=False)
        assert dataset.embeddings is not None
        scores = text_predict(artifact, [dataset.texts[i] for i in test_rows], dataset.embeddings[test_rows])
        probabilities[test_rows] = scores
    return {"oof_ids": np.asarray(dataset.ids, dtype=np.int64), "oof_probabilities": probabilities}


def _train_injection(
    *, purpose: str, parameters: dict[str, Any], progress: Progress, active: dict[str, Any] | None
) -> Trained:
    progress(5, "reading labelled texts")
    dataset = injection_dataset(parameters.get("dataset"))
    trained, _, _ = _text_trained(
        dataset=dataset,
        labels=INJECTION_LABELS,
        progress=progress,
        active=active,
        char_ngrams=True,
        algorithm="logistic regression on word (1-2) and character (2-5) TF-IDF",
        parameters=parameters,
    )
    progress(90, "cross-validating")
    trained.metrics["cross_validation"] = injection_cross_validation(dataset)
    return trained


def injection_cross_validation(dataset: Dataset, folds: int = 5) -> dict[str, Any]:
    """Stratified k-fold F1 (injection as the positive class) and ROC AUC, mean and spread."""
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    f1s, aucs = [], []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=SEED)
    for train_rows, test_rows in splitter.split(dataset.texts, dataset.labels):
        artifact = _fit_text(dataset, train_rows, INJECTION_LABELS, char_ngrams=True)
        probabilities = text_predict(artifact, [dataset.texts[i] for i in test_rows], None)[:, 1]
        truth = [int(dataset.labels[i] == "injection") for i in test_rows]
        f1s.append(f1_score(truth, (probabilities >= 0.5).astype(int), zero_division=0))
        aucs.append(binary_auc(truth, probabilities.tolist()) or 0.0)
    return {
        "folds": folds,
        "f1_mean": round(float(np.mean(f1s)), 4),
        "f1_std": round(float(np.std(f1s)), 4),
        "auc_mean": round(float(np.mean(aucs)), 4),
        "auc_std": round(float(np.std(aucs)), 4),
    }


def _train_customer(
    *, purpose: str, parameters: dict[str, Any], progress: Progress, active: dict[str, Any] | None
) -> Trained:
    from sklearn.preprocessing import StandardScaler

    churn_days = int(parameters.get("churn_days") or settings.ML_CHURN_DAYS)
    parameters = {**parameters, "churn_days": churn_days} if purpose == Purpose.CUSTOMER_CHURN else parameters
    progress(5, "reading customer histories")
    dataset = customer_dataset(purpose, churn_days)
    labels = CHURN_LABELS if purpose == Purpose.CUSTOMER_CHURN else cf.CHANNELS
    kept = _check_enough(dataset, labels)
    dataset = _keep(dataset, kept)
    progress(40, "splitting by customer and fitting")
    train_rows, test_rows = split(dataset)
    assert dataset.numeric is not None
    scaler = StandardScaler().fit(dataset.numeric[train_rows])
    classifier = _classifier(c=1.0).fit(
        scaler.transform(dataset.numeric[train_rows]), [dataset.labels[i] for i in train_rows]
    )
    artifact = {
        "format": 1,
        "scaler": scaler,
        "classifier": classifier,
        "labels": list(kept),
        "feature_names": list(cf.FEATURE_NAMES),
        "parameters": parameters,
    }
    progress(70, "scoring the held-out split")
    metrics: dict[str, Any] = {
        "model": evaluate_customer(artifact, dataset, test_rows, kept),
        "baseline": {
            **majority_baseline([dataset.labels[i] for i in train_rows], [dataset.labels[i] for i in test_rows], kept),
            "name": "majority class",
        },
        "split": {"train": int(len(train_rows)), "test": int(len(test_rows)), "seed": SEED, "by": "customer"},
    }
    if active is not None and list(active.get("feature_names", [])) == list(cf.FEATURE_NAMES):
        try:
            metrics["active"] = evaluate_customer(active, dataset, test_rows, kept)
        except Exception as error:  # noqa: BLE001 - reported, not fatal
            metrics["active"] = {"error": type(error).__name__}
    return Trained(
        artifact=artifact,
        metrics=metrics,
        training_data=dataset.summary(),
        parameters=parameters,
        algorithm="logistic regression on standardised history features (recency, frequency, complaints, channels)",
    )


def customer_probabilities(artifact: dict[str, Any], rows: np.ndarray) -> np.ndarray:
    classifier = artifact["classifier"]
    probabilities = classifier.predict_proba(artifact["scaler"].transform(rows))
    result = np.zeros((len(rows), len(artifact["labels"])))
    for column, label in enumerate(artifact["labels"]):
        if label in classifier.classes_:
            result[:, column] = probabilities[:, list(classifier.classes_).index(label)]
    return result


def evaluate_customer(
    artifact: dict[str, Any], dataset: Dataset, test_rows: np.ndarray, labels: Sequence[str]
) -> dict[str, Any]:
    assert dataset.numeric is not None
    probabilities = customer_probabilities(artifact, dataset.numeric[test_rows])
    model_labels = artifact["labels"]
    predicted = [model_labels[int(row.argmax())] for row in probabilities]
    truth = [dataset.labels[i] for i in test_rows]
    aligned = np.zeros((len(test_rows), len(labels)))
    for column, label in enumerate(labels):
        if label in model_labels:
            aligned[:, column] = probabilities[:, model_labels.index(label)]
    metrics = classification_metrics(truth, predicted, labels, aligned)
    if len(labels) == 2:
        metrics["auc"] = binary_auc([int(label == labels[1]) for label in truth], aligned[:, 1].tolist())
    return metrics


# ---- routing cost of a set of task types ------------------------------------------------------------
TOKENS_IN_PER_QUESTION = 1500  # instructions, six passages and the question
TOKENS_OUT_PER_QUESTION = 400
REFERENCE_MODELS = {  # used for a tier with no enabled catalog model: prices from litellm's bundled map
    "economy": "openai/gpt-4o-mini",
    "standard": "anthropic/claude-sonnet-4-5",
    "premium": "anthropic/claude-opus-4-1",
    "research": "anthropic/claude-opus-4-1",
}
PREMIUM_TIERS = ("premium", "research")


def tier_prices() -> dict[str, dict[str, Any]]:
    """Cost of one question (TOKENS_IN/OUT) per tier: its first enabled catalog model, else a reference."""
    from portal.routing.router import Deployment, attempt_cost
    from portal.routing.selectors import catalog_enabled, deployment_from
    from portal.routing.types import TIERS

    catalog: dict[str, Any] = {}
    for model in catalog_enabled():
        catalog.setdefault(model.tier, model)
    prices = {}
    for tier in TIERS:
        if tier in catalog:
            deployment = deployment_from(catalog[tier])
            source = "catalog"
        else:
            deployment = Deployment(
                key=f"reference:{tier}",
                display_name=REFERENCE_MODELS[tier],
                provider="",
                litellm_model=REFERENCE_MODELS[tier],
                api_base="",
                api_key_env="",
                timeout_seconds=60,
            )
            source = "reference (litellm price map)"
        cost, _ = attempt_cost(deployment, TOKENS_IN_PER_QUESTION, TOKENS_OUT_PER_QUESTION)
        prices[tier] = {"model": deployment.litellm_model, "cost_per_question": float(cost), "source": source}
    return prices


def routing_costs(task_types: Sequence[str], prices: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    from portal.routing.selectors import task_tiers

    tiers = task_tiers()
    prices = prices or tier_prices()
    chosen = [tiers.get(task, "economy") for task in task_types]
    total = sum(prices[tier]["cost_per_question"] for tier in chosen)
    return {
        "questions": len(chosen),
        "premium_share": round(sum(tier in PREMIUM_TIERS for tier in chosen) / max(1, len(chosen)), 4),
        "cost_per_1000": round(total * 1000 / max(1, len(chosen)), 4),
        "tier_counts": dict(sorted(Counter(chosen).items())),
        "assumed_tokens": [TOKENS_IN_PER_QUESTION, TOKENS_OUT_PER_QUESTION],
    }
