from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit.services import audit_checkpoint_create


class Command(BaseCommand):
    help = "Sign the head of the audit chain with the checkpoint key and write it to the checkpoint store."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="write one even if the head was already signed")
        parser.add_argument("--dir", type=Path, help="checkpoint store (default: AUDIT_CHECKPOINT_DIR)")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        checkpoint, path = audit_checkpoint_create(force=options["force"], directory=options["dir"])
        if options["json"]:
            payload = {"written": path is not None, "file": str(path or "")}
            if checkpoint is not None:
                payload |= {"head_seq": checkpoint.head_seq, "head_hash": checkpoint.head_hash}
            self.stdout.write(json.dumps(payload))
        elif checkpoint is None:
            self.stdout.write("No checkpoint written: the chain is empty or its head is already signed.")
        else:
            self.stdout.write(f"Checkpoint of event #{checkpoint.head_seq} ({checkpoint.event_count} events): {path}")
