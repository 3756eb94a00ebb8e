"""Re-encrypt every pseudonymization vault with the first key of GOVERNANCE_VAULT_KEY.

    GOVERNANCE_VAULT_KEY="<new key>,<old key>" manage.py vault_rotate [--json]

Rotation: put a new key first and keep the old one after it (both decrypt, the first encrypts), run
this command, then drop the old key. Prints `vaults_rotated` and `vaults_unreadable` (vaults no
configured key opens: they are left untouched, and the command fails so the old key is not dropped).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.models import Outcome
from audit.services import audit
from governance.vault import vault_keys, vault_rotate

ERROR_UNREADABLE = (
    "{count} vault(s) could not be read with any configured key and were left as they are; "
    "keep the key that wrote them in GOVERNANCE_VAULT_KEY."
)


class Command(BaseCommand):
    help = "Re-encrypt all pseudonymization vaults with the first configured vault key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        keys = len(vault_keys())
        rotated, unreadable = vault_rotate()
        audit(
            actor=None,
            actor_username="system",
            action="governance.vault_key_rotated",
            outcome=Outcome.SUCCESS if not unreadable else Outcome.FAILURE,
            details={"rotated": rotated, "unreadable": unreadable, "keys_configured": keys},
        )
        figures = {"vaults_rotated": rotated, "vaults_unreadable": unreadable, "keys_configured": keys}
        if options["json"]:
            self.stdout.write(json.dumps(figures))
        else:
            for name, value in figures.items():
                self.stdout.write(f"{name}: {value}")
        if unreadable:
            raise CommandError(ERROR_UNREADABLE.format(count=unreadable))
