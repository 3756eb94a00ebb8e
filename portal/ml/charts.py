"""Metrics as bars for the model page (widths computed here, drawn by CSS; no JavaScript)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MetricBar:
    label: str
    series: str  # "model", "baseline", "active"
    value: float
    percent: float


def per_class_bars(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Per class: the F1 of this model, of the baseline and of the model active at training time."""
    rows = []
    model = (metrics.get("model") or {}).get("per_class", {})
    for label, values in model.items():
        bars = [MetricBar(label, "model", values["f1"], round(values["f1"] * 100, 1))]
        for series in ("baseline", "active"):
            other = ((metrics.get(series) or {}).get("per_class") or {}).get(label)
            if other is not None:
                bars.append(MetricBar(label, series, other["f1"], round(other["f1"] * 100, 1)))
        rows.append({"label": label, "bars": bars})
    return rows


def calibration_bars(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    bins = ((metrics.get("model") or {}).get("calibration") or {}).get("bins", [])
    return [
        {
            **item,
            "confidence_percent": round(item["confidence"] * 100, 1),
            "accuracy_percent": round(item["accuracy"] * 100, 1),
        }
        for item in bins
    ]
