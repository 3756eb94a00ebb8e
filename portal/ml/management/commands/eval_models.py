"""`manage.py eval_models [--json]`: train every local model on the current data and score it on
held-out data against its baseline (see portal/ml/bench/evaluation.py). Nothing is written to the registry.

`--demo` first creates the demo data it needs (example questions, labelled knowledge bases ingested in
this process, generated customer histories): run it on a database of its own,
    PORTAL_DB_NAME=portal_ml_eval python manage.py eval_models --demo
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

SHARED_DATA = Path(settings.BASE_DIR).parent / "shared" / "data"


class Command(BaseCommand):
    help = "Score the learned local models against their baselines on held-out data."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--demo", action="store_true", help="create the demo data first (own database!)")
        parser.add_argument(
            "--injection-data",
            default=str(SHARED_DATA / "injection" / "deepset_prompt_injections.jsonl"),
            help="labelled injection examples ({text, label} lines) besides the portal's own (default %(default)s)",
        )
        parser.add_argument("--contoso", default=str(SHARED_DATA / "business_kb" / "contoso"))
        parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")

    def handle(self, *args: Any, **options: Any) -> None:
        from portal.ml.bench import evaluation

        log = self.stderr.write
        if options["demo"]:
            call_command("migrate", interactive=False, verbosity=0)
            log("creating the demo data…")
            evaluation.demo_data_ensure()
        figures: dict[str, Any] = {}
        log("task router…")
        figures.update(evaluation.router_figures(log))
        log("sensitivity classifier…")
        figures.update(evaluation.sensitivity_figures(Path(options["contoso"]), log))
        log("injection detector…")
        injection = Path(options["injection_data"])
        figures["injection_dataset"] = str(injection) if injection.is_file() else "absent: own examples only"
        figures.update(evaluation.injection_figures(str(injection) if injection.is_file() else None))
        log("customer predictions…")
        figures.update(evaluation.customer_figures())
        if options["json"]:
            self.stdout.write(json.dumps(figures, indent=2))
        else:
            for name, value in figures.items():
                self.stdout.write(f"{name}: {value}")
