"""Measuring the detection layers on a labelled data set (presidio-research's synthetic format).

Used by `manage.py eval_pii`; kept apart from the command so tests can run it on a tiny data set.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from governance import classes as dc
from governance.detection import Finding, pattern_findings, resolve_overlaps
from governance.known_entities import KnownEntity, KnownEntityIndex

# The data set's entity types mapped to the portal's data classes; types without a class (GPE,
# ORGANIZATION, TITLE, NRP, AGE, DOMAIN_NAME) are not personal data the portal treats and are not scored.
DATASET_TYPE_MAP: dict[str, str] = {
    "CREDIT_CARD": dc.PAYMENT_CARD,
    "EMAIL_ADDRESS": dc.EMAIL,
    "IBAN_CODE": dc.BANK_ACCOUNT,
    "PHONE_NUMBER": dc.PHONE,
    "US_SSN": dc.NATIONAL_ID,
    "US_DRIVER_LICENSE": dc.NATIONAL_ID,
    "IP_ADDRESS": dc.IP_ADDRESS,
    "PERSON": dc.PERSON,
    "STREET_ADDRESS": dc.POSTAL_ADDRESS,
    "ZIP_CODE": dc.POSTAL_ADDRESS,
    "DATE_TIME": dc.DATE_OF_BIRTH,
}
VALIDATED_TYPES = ("EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "PHONE_NUMBER", "US_SSN", "IP_ADDRESS")
PRESIDIO_PUBLISHED = {"precision": 0.685, "recall": 0.603}
TIMING_ROUNDS = 3


@dataclass(frozen=True)
class GoldSpan:
    start: int
    end: int
    dataset_type: str

    @property
    def data_class(self) -> str | None:
        return DATASET_TYPE_MAP.get(self.dataset_type)


@dataclass(frozen=True)
class Sample:
    text: str
    spans: tuple[GoldSpan, ...]


def load_dataset(path: Path) -> list[Sample]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return [
        Sample(
            text=item["full_text"],
            spans=tuple(
                GoldSpan(span["start_position"], span["end_position"], span["entity_type"]) for span in item["spans"]
            ),
        )
        for item in raw
    ]


def _overlaps(start: int, end: int, other_start: int, other_end: int) -> bool:
    return start < other_end and other_start < end


def score_layer(
    samples: Sequence[Sample], finder: Callable[[str], list[Finding]], *, timing_rounds: int = TIMING_ROUNDS
) -> dict[str, Any]:
    """Recall per dataset type (a gold span is found when a finding of its class overlaps it), precision per
    class (a finding is right when it overlaps a gold span of its class), and the throughput (the best of
    a few passes, since other processes share the CPU)."""
    found: Counter[str] = Counter()
    exact: Counter[str] = Counter()
    total: Counter[str] = Counter()
    true_positive: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    characters = sum(len(sample.text) for sample in samples)
    all_findings = [finder(sample.text) for sample in samples]
    elapsed = float("inf")
    for _ in range(max(1, timing_rounds)):
        started = time.perf_counter()
        for sample in samples:
            finder(sample.text)
        elapsed = min(elapsed, time.perf_counter() - started)
    for sample, findings in zip(samples, all_findings, strict=True):
        for gold in sample.spans:
            if gold.data_class is None:
                continue
            total[gold.dataset_type] += 1
            matching = [
                f
                for f in findings
                if f.data_class == gold.data_class and _overlaps(f.start, f.end, gold.start, gold.end)
            ]
            if matching:
                found[gold.dataset_type] += 1
                if any(f.start == gold.start and f.end == gold.end for f in matching):
                    exact[gold.dataset_type] += 1
        for finding in findings:
            predicted[finding.data_class] += 1
            if any(
                gold.data_class == finding.data_class and _overlaps(finding.start, finding.end, gold.start, gold.end)
                for gold in sample.spans
            ):
                true_positive[finding.data_class] += 1
    per_type = {
        name: {
            "support": total[name],
            "recall": round(found[name] / total[name], 4) if total[name] else None,
            "exact_boundaries": round(exact[name] / total[name], 4) if total[name] else None,
        }
        for name in sorted(total)
    }
    per_class = {
        name: {
            "predicted": predicted[name],
            "precision": round(true_positive[name] / predicted[name], 4) if predicted[name] else None,
        }
        for name in sorted(predicted)
    }
    return {
        "recall_per_type": per_type,
        "precision_per_class": per_class,
        "found": sum(found.values()),
        "support": sum(total.values()),
        "predicted": sum(predicted.values()),
        "true_positive": sum(true_positive.values()),
        "chars_per_second": round(characters / elapsed) if elapsed else None,
        "ms_per_sentence": round(1000 * elapsed / max(1, len(samples)), 4),
    }


def _restricted(result: dict[str, Any], types: Sequence[str]) -> dict[str, float | None]:
    recalls = result["recall_per_type"]
    support = sum(recalls[t]["support"] for t in types if t in recalls)
    found = sum(round(recalls[t]["recall"] * recalls[t]["support"]) for t in types if t in recalls)
    return {"recall": round(found / support, 4) if support else None}


def evaluate(samples: Sequence[Sample]) -> dict[str, Any]:
    people = [
        KnownEntity(sample.text[gold.start : gold.end], dc.PERSON)
        for sample in samples
        for gold in sample.spans
        if gold.dataset_type == "PERSON"
    ]
    index = KnownEntityIndex(people)
    layers = {
        "patterns": score_layer(samples, lambda text: resolve_overlaps(pattern_findings(text))),
        "known_entities": score_layer(samples, index.find),
        "combined": score_layer(samples, lambda text: resolve_overlaps([*pattern_findings(text), *index.find(text)])),
    }
    combined = layers["combined"]
    validated = _restricted(layers["patterns"], VALIDATED_TYPES)
    person_recall = layers["known_entities"]["recall_per_type"].get("PERSON", {}).get("recall")
    overall = {
        "precision": round(combined["true_positive"] / combined["predicted"], 4) if combined["predicted"] else None,
        "recall": round(combined["found"] / combined["support"], 4) if combined["support"] else None,
    }
    return {
        "samples": len(samples),
        "layers": layers,
        "overall": overall,
        "validated_patterns_recall": validated["recall"],
        "known_entities_person_recall": person_recall,
        "known_entities_size": index.size,
        "presidio_published": PRESIDIO_PUBLISHED,
    }


def figure_lines(result: dict[str, Any]) -> list[str]:
    lines = [f"samples: {result['samples']}"]
    for layer, data in result["layers"].items():
        for name, row in data["recall_per_type"].items():
            lines.append(
                f"{layer}.recall.{name}: {row['recall']}  (support {row['support']}, exact {row['exact_boundaries']})"
            )
        for name, row in data["precision_per_class"].items():
            lines.append(f"{layer}.precision.{name}: {row['precision']}  (predicted {row['predicted']})")
        lines.append(f"{layer}.chars_per_second: {data['chars_per_second']}")
        lines.append(f"{layer}.ms_per_sentence: {data['ms_per_sentence']}")
    lines.append(f"validated_patterns_recall: {result['validated_patterns_recall']}  (target >= 0.99)")
    lines.append(f"known_entities_person_recall: {result['known_entities_person_recall']}  (target 1.0)")
    lines.append(f"overall_precision: {result['overall']['precision']}")
    lines.append(f"overall_recall: {result['overall']['recall']}")
    lines.append(f"presidio_published_precision: {PRESIDIO_PUBLISHED['precision']}")
    lines.append(f"presidio_published_recall: {PRESIDIO_PUBLISHED['recall']}")
    lines.append("presidio_published_ms_per_sentence: tens of ms")
    return lines
