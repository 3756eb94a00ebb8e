from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from portal.routing.bench.router import router_overhead


class Command(BaseCommand):
    help = "Router overhead: the portal's model call path against a direct litellm call to the same endpoint."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--n", type=int, default=200, help="measured calls per path (default 200)")
        parser.add_argument("--warmup", type=int, default=10)
        parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")

    def handle(self, *args: Any, **options: Any) -> None:
        figures = router_overhead(n=options["n"], warmup=options["warmup"])
        if options["json"]:
            self.stdout.write(json.dumps(figures))
            return
        for name, value in figures.items():
            self.stdout.write(f"{name}: {value}")
