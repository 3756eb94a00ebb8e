"""Measuring the detection layers on a labelled data set (presidio-research's synthetic format).

Used by `manage.py eval_pii`; kept apart from the command so tests can run it on a tiny data set.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from governance import classes as dc
from governance.detection import Finding, pattern_findings, resolve_overlaps
from governance.known_entities import KnownEntity, KnownEntityIndex, normalise_value

# The data set's entity types mapped to the portal's data classes. Types without a class (GPE,
# ORGANIZATION, TITLE, NRP, AGE, DOMAIN_NAME, or any type a data set adds) are not scored, but they are
# counted and reported as `unscored_types`, never dropped silently.
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
    "DATE_TIME": dc.DATE,
}
# A finding of another class that also counts for a gold class: a date of birth is a date.
ALSO_COUNTS_FOR: dict[str, frozenset[str]] = {dc.DATE: frozenset({dc.DATE_OF_BIRTH})}


def counts_for(finding_class: str, gold_class: str | None) -> bool:
    return gold_class is not None and (
        finding_class == gold_class or finding_class in ALSO_COUNTS_FOR.get(gold_class, frozenset())
    )


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
                if counts_for(f.data_class, gold.data_class) and _overlaps(f.start, f.end, gold.start, gold.end)
            ]
            if matching:
                found[gold.dataset_type] += 1
                if any(f.start == gold.start and f.end == gold.end for f in matching):
                    exact[gold.dataset_type] += 1
        for finding in findings:
            predicted[finding.data_class] += 1
            if any(
                counts_for(finding.data_class, gold.data_class)
                and _overlaps(finding.start, finding.end, gold.start, gold.end)
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


def unscored_types(samples: Sequence[Sample]) -> dict[str, int]:
    """Gold types the evaluation has no data class for, with their counts."""
    counts = Counter(gold.dataset_type for sample in samples for gold in sample.spans if gold.data_class is None)
    return dict(sorted(counts.items()))


def _person_names(samples: Sequence[Sample]) -> list[str]:
    names = {
        sample.text[g.start : g.end].strip() for sample in samples for g in sample.spans if g.dataset_type == "PERSON"
    }
    return sorted(name for name in names if name)


def split_names(names: Sequence[str]) -> tuple[set[str], set[str]]:
    """Two halves of the names, the same on every run (by a hash of the folded name, not by position)."""
    dictionary: set[str] = set()
    held_out: set[str] = set()
    for name in names:
        digest = hashlib.sha256(normalise_value(name).encode()).digest()
        (dictionary if digest[0] % 2 == 0 else held_out).add(name)
    return dictionary, held_out


def person_split(samples: Sequence[Sample]) -> dict[str, Any]:
    """PERSON recall with a dictionary built from half of the names, scored on the spans of the other half:
    what the detector finds of people it was not given (by variants, titles and patterns), apart from lookup."""
    dictionary, held_out = split_names(_person_names(samples))
    index = KnownEntityIndex([KnownEntity(name, dc.PERSON, key=f"name:{name}") for name in sorted(dictionary)])
    found = {"held_out": 0, "in_dictionary": 0}
    support = {"held_out": 0, "in_dictionary": 0}
    for sample in samples:
        findings = resolve_overlaps([*pattern_findings(sample.text), *index.find(sample.text)])
        for gold in sample.spans:
            if gold.dataset_type != "PERSON":
                continue
            name = sample.text[gold.start : gold.end].strip()
            group = "in_dictionary" if name in dictionary else "held_out"
            support[group] += 1
            if any(f.data_class == dc.PERSON and _overlaps(f.start, f.end, gold.start, gold.end) for f in findings):
                found[group] += 1
    return {
        "dictionary_names": len(dictionary),
        "held_out_names": len(held_out),
        **{f"{group}_support": support[group] for group in support},
        **{f"recall_{group}": round(found[group] / support[group], 4) if support[group] else None for group in support},
    }


def evaluate(samples: Sequence[Sample]) -> dict[str, Any]:
    people = [KnownEntity(name, dc.PERSON, key=f"name:{name}") for name in _person_names(samples)]
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
        "person_split": person_split(samples),
        "unscored_types": unscored_types(samples),
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
    lines.append(
        f"known_entities_person_recall: {result['known_entities_person_recall']}"
        "  (lookup: the dictionary holds every gold name; target 1.0)"
    )
    split = result["person_split"]
    lines.append(
        f"person_split.recall_held_out: {split['recall_held_out']}  (support {split['held_out_support']};"
        f" dictionary of {split['dictionary_names']} names, scored on the other {split['held_out_names']})"
    )
    lines.append(
        f"person_split.recall_in_dictionary: {split['recall_in_dictionary']}"
        f"  (support {split['in_dictionary_support']})"
    )
    for name, count in result["unscored_types"].items():
        lines.append(f"unscored_type.{name}: {count}  (no data class: not scored)")
    lines.append(f"overall_precision: {result['overall']['precision']}")
    lines.append(f"overall_recall: {result['overall']['recall']}")
    lines.append(f"presidio_published_precision: {PRESIDIO_PUBLISHED['precision']}")
    lines.append(f"presidio_published_recall: {PRESIDIO_PUBLISHED['recall']}")
    lines.append("presidio_published_ms_per_sentence: tens of ms")
    return lines
