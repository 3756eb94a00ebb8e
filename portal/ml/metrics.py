"""Held-out metrics, stored as plain JSON on the registry row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

CALIBRATION_BINS = 10


def _round(value: float) -> float:
    return round(float(value), 4)


def classification_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str], probabilities: np.ndarray | None = None
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, and (with probabilities over `labels`)
    calibration: expected calibration error over confidence bins and the multi-class Brier score."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    present = [label for label in labels if label in set(y_true) | set(y_pred)]
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=present, zero_division=0)
    result: dict[str, Any] = {
        "examples": len(y_true),
        "accuracy": _round(accuracy_score(y_true, y_pred)),
        "macro_f1": _round(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "per_class": {
            label: {
                "precision": _round(precision[index]),
                "recall": _round(recall[index]),
                "f1": _round(f1[index]),
                "support": int(support[index]),
            }
            for index, label in enumerate(present)
        },
    }
    if probabilities is not None and len(y_true):
        result["calibration"] = calibration(y_true, labels, probabilities)
    return result


def calibration(y_true: Sequence[str], labels: Sequence[str], probabilities: np.ndarray) -> dict[str, Any]:
    index = {label: position for position, label in enumerate(labels)}
    truth = np.zeros_like(probabilities)
    for row, label in enumerate(y_true):
        if label in index:
            truth[row, index[label]] = 1.0
    confidence = probabilities.max(axis=1)
    correct = truth[np.arange(len(y_true)), probabilities.argmax(axis=1)]
    bins = []
    ece = 0.0
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > low) & (confidence <= high)
        count = int(inside.sum())
        if not count:
            continue
        mean_confidence = float(confidence[inside].mean())
        accuracy = float(correct[inside].mean())
        ece += count / len(y_true) * abs(mean_confidence - accuracy)
        bins.append(
            {
                "low": _round(low),
                "high": _round(high),
                "count": count,
                "confidence": _round(mean_confidence),
                "accuracy": _round(accuracy),
            }
        )
    brier = float(((probabilities - truth) ** 2).sum(axis=1).mean())
    return {"ece": _round(ece), "brier": _round(brier), "bins": bins}


def binary_auc(y_true: Sequence[int], scores: Sequence[float]) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(set(y_true)) < 2:
        return None
    return _round(roc_auc_score(list(y_true), list(scores)))


def majority_baseline(y_train: Sequence[str], y_test: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Always the most frequent training label: what a prediction model has to beat."""
    from collections import Counter

    majority = Counter(y_train).most_common(1)[0][0]
    metrics = classification_metrics(y_test, [majority] * len(y_test), labels)
    metrics["predicts"] = majority
    return metrics
