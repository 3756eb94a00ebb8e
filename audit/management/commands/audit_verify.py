from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit.selectors import TrailReport, audit_trail_verify, duration_text
from audit.verify_export import ExportReport, verify_export_file

NOT_VERIFIED_SUMMARY = (
    "Audit trail NOT VERIFIED: no sign of tampering, but the newest events are not covered by a recent signed "
    "checkpoint, so their removal or replacement could not be detected (see above)"
)


class Command(BaseCommand):
    help = (
        "Verify the audit trail: walk the hash chain, check every signed checkpoint against it, tell whether "
        "events were deleted from the end, and whether the newest events are covered by a recent enough "
        "checkpoint (AUDIT_UNCHECKPOINTED_MAX, twice AUDIT_CHECKPOINT_INTERVAL_SECONDS). Exits 1 unless all is "
        "proven. With --jsonl, verify an exported file against the chain."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument("--checkpoints", type=Path, help="checkpoint folder (default: AUDIT_CHECKPOINT_DIR)")
        parser.add_argument("--public-key", type=Path, help="public key PEM to check checkpoints with")
        parser.add_argument("--jsonl", type=Path, help="verify this JSONL export against the chain instead")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["jsonl"]:
            self._verify_export(options)
            return
        report = audit_trail_verify(checkpoint_dir=options["checkpoints"], public_key_path=options["public_key"])
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict()))
        else:
            self.stdout.write(self._text(report))
        if not report.verified:  # tampered, or not proven: both need a person
            raise SystemExit(1)

    def _text(self, report: TrailReport) -> str:
        lines = [
            f"Validating the audit trail: {report.events_total} events in the database, "
            f"checkpoints in {report.checkpoint_dir}, public key {report.public_key or 'not found'}",
            "",
            f"Results requested for events #1 to #{report.head_seq}",
            f"Results found for {report.first_time or '-'} to {report.last_time or '-'}:",
            "",
        ]
        brk = report.first_invalid_event
        if brk is not None:
            lines.append(f"Event #{brk.seq} (id {brk.event_id}) INVALID: {brk.reason}")
            lines.append(f"  chain BROKEN at event #{brk.seq} (id {brk.event_id})")
        for result in report.checkpoints:
            if not result.valid:
                lines.append(f"Checkpoint {result.file_name} INVALID: {result.problem}")
        if brk is not None or report.first_invalid_checkpoint is not None:
            lines.append("")
        lines.append(f"{report.events_valid}/{report.events_total} events valid")
        lines.append(f"{report.checkpoints_valid}/{len(report.checkpoints)} checkpoints valid")
        latest = report.latest_checkpoint
        if latest is not None:
            seconds = report.checkpoint_age_seconds
            age = f", {duration_text(seconds)} ago" if seconds is not None else ""
            lines.append(f"Latest valid checkpoint: event #{latest.head_seq}, signed {latest.created_at}{age}")
        else:
            lines.append("No valid checkpoint: deletions from the end cannot be detected (run audit_checkpoint)")
        lines.append(f"Events after the newest checkpoint: {report.events_after_checkpoint} "
                     f"(limit {report.unchecked_limit})")  # fmt: skip
        lines += [f"NOT VERIFIED: {reason}" for reason in report.not_verified]
        if report.tail_deleted:
            lines.append(f"Events deleted from the end: YES, a checkpoint {report.tail_deleted_note}")
        else:
            lines.append("Events deleted from the end: none detected")
        lines.append("")
        if not report.intact:
            lines.append("Audit trail NOT intact")
        elif not report.verified:
            lines.append(NOT_VERIFIED_SUMMARY)
        else:
            lines.append("Audit trail intact")
            lines.append(f"{report.events_total} events, chain intact (head #{report.head_seq})")
        return "\n".join(lines)

    def _verify_export(self, options: dict[str, Any]) -> None:
        from audit.models import AuditEvent

        def stored_hash(seq: int) -> str | None:
            return AuditEvent.objects.filter(seq=seq).values_list("hash", flat=True).first()

        report: ExportReport = verify_export_file(
            options["jsonl"], stored_hash=stored_hash, checkpoint_dir=options["checkpoints"],
            public_key_path=options["public_key"],
        )  # fmt: skip
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict()))
        else:
            self.stdout.write("\n".join(report.text_lines()))
        if not report.intact:
            raise SystemExit(1)
