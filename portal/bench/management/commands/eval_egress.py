"""`manage.py eval_egress`: hard canary customers and prompts through the real import, pipeline and gate.

See portal/bench/egress.py for each figure. Prints one `name: value` line per figure (or one JSON object
with --json). Run it on a database of its own:
    PORTAL_DB_NAME=portal_eval_egress python manage.py eval_egress
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.bench.canaries import STYLES

DEFAULT_CONTOSO = Path(settings.BASE_DIR).parent / "shared" / "data" / "business_kb" / "contoso"


class Command(BaseCommand):
    help = "Measure what of hard customer values leaves through the egress gate, and what is restored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=15, help="canary generator seed (default %(default)s)")
        parser.add_argument("--customers", type=int, default=120, help="hard customers (default %(default)s)")
        parser.add_argument("--prompts-per-customer", type=int, default=3, help="default %(default)s")
        parser.add_argument("--styles", default="", help=f"only these comma-separated styles ({', '.join(STYLES)})")
        parser.add_argument("--contoso", default=str(DEFAULT_CONTOSO), help="folder of benign Contoso documents")
        parser.add_argument("--fail-on-leak", action="store_true", help="exit 1 when any prompt leaks")
        parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")

    def handle(self, *args: Any, **options: Any) -> None:
        from portal.bench import egress

        styles = [style.strip() for style in options["styles"].split(",") if style.strip()] or None
        unknown = sorted(set(styles or ()) - set(STYLES))
        if unknown:
            raise CommandError(f"Unknown styles: {', '.join(unknown)} (known: {', '.join(STYLES)})")
        call_command("migrate", interactive=False, verbosity=0)
        try:
            figures = egress.run(
                seed=options["seed"], customers=options["customers"],
                prompts_per_customer=options["prompts_per_customer"],
                contoso=Path(options["contoso"]) if options["contoso"] else None, styles=styles, log=self.stderr.write,
            )  # fmt: skip
        except RuntimeError as error:  # no Faker, or the canaries did not import: say why, no traceback
            raise CommandError(str(error)) from error
        if options["json"]:
            self.stdout.write(json.dumps(figures, indent=2, ensure_ascii=False))
        else:
            for line in egress.figure_lines(figures):
                self.stdout.write(line)
        if options["fail_on_leak"] and figures["prompts_leaking"]:
            raise CommandError(f"{figures['prompts_leaking']} prompts sent a canary value in clear.")
