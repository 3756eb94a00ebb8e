"""Measure the PII detection layers: precision/recall per type and per layer, and throughput."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from governance.detection import ner_status
from governance.evaluation import evaluate, figure_lines, load_dataset

DEFAULT_DATASET = "../shared/data/pii/presidio_research_synth_dataset_v2.json"


class Command(BaseCommand):
    help = "Evaluate PII detection (patterns, known entities, NER) on a presidio-research style data set."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", default=DEFAULT_DATASET, help="path to the JSON data set")
        parser.add_argument("--limit", type=int, default=0, help="only the first N sentences")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["dataset"])
        if not path.is_file():
            self.stdout.write(f"skipped: data set not found at {path}")
            return
        samples = load_dataset(path)
        if options["limit"]:
            samples = samples[: options["limit"]]
        result = evaluate(samples)
        result["ner"] = ner_status()
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
            return
        for line in figure_lines(result):
            self.stdout.write(line)
        self.stdout.write(f"ner: {result['ner']}")
