from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit.selectors import audit_chain_verify


class Command(BaseCommand):
    help = "Walk the audit hash chain and report whether it is intact, or the first broken event."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        report = audit_chain_verify()
        if options["json"]:
            payload: dict[str, Any] = {
                "events_checked": report.checked,
                "intact": report.intact,
                "head_seq": report.head_seq,
                "head_hash": report.head_hash,
            }
            if report.first_break:
                payload["first_broken_seq"] = report.first_break.seq
                payload["first_broken_id"] = report.first_break.event_id
                payload["reason"] = report.first_break.reason
            self.stdout.write(json.dumps(payload))
        elif report.intact:
            self.stdout.write(
                f"{report.checked} events, chain intact (head #{report.head_seq} {report.head_hash[:16]}…)"
            )
        else:
            assert report.first_break is not None
            brk = report.first_break
            self.stdout.write(
                f"{report.checked} events valid before the break; chain BROKEN at event #{brk.seq} "
                f"(id {brk.event_id}): {brk.reason}"
            )
        if not report.intact:
            raise SystemExit(1)
