"""Import memories from a CSV file (source "import"), with the same review rules as memories added by hand.

Columns: text (required), kind, scope (organisation | role | customer | user), target (the role name,
the customer id, or the username for personal memories), sensitivity. The importing user's rights apply:
a reviewer's rows are approved unless flagged as duplicates or contradictions; anyone else's are proposed.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.customers.selectors import customer_by_id
from portal.memory.models import Kind, Scope, Sensitivity, Source, Status
from portal.memory.services import MemoryDraft, memory_create


class Command(BaseCommand):
    help = "Import memories from a CSV file (columns: text, kind, scope, target, sensitivity)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--username", required=True, help="the user the import is done as (audited)")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = User.objects.filter(username=options["username"], is_active=True).first()
        if actor is None:
            raise CommandError(f"no active user {options['username']!r}")
        try:
            text = Path(options["path"]).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"cannot read {options['path']}: {error}") from error
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or "text" not in [name.strip().lower() for name in reader.fieldnames]:
            raise CommandError("the first line must name the columns, with at least 'text'")
        approved = proposed = 0
        problems: list[dict[str, Any]] = []
        for row in reader:
            values = {key.strip().lower(): (value or "").strip() for key, value in row.items() if key}
            line = reader.line_num
            try:
                memory = memory_create(actor=actor, draft=self._draft(values, actor), source=Source.IMPORT)
            except (ValidationError, PermissionDenied, ValueError) as error:
                messages = error.messages if isinstance(error, ValidationError) else [str(error)]
                problems.append({"line": line, "reason": " ".join(messages)})
                continue
            if memory.status == Status.APPROVED:
                approved += 1
            else:
                proposed += 1
        result = {"approved": approved, "proposed": proposed, "rejected": len(problems), "problems": problems}
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(f"approved: {approved}\nproposed: {proposed}\nrejected: {len(problems)}")
        for problem in problems:
            self.stdout.write(f"  line {problem['line']}: {problem['reason']}")

    @staticmethod
    def _draft(values: dict[str, str], actor: User) -> MemoryDraft:
        kind = values.get("kind", "").lower() or Kind.FACT
        scope = values.get("scope", "").lower() or Scope.ORGANISATION
        sensitivity = values.get("sensitivity", "").lower() or Sensitivity.INTERNAL
        if kind not in Kind.values or scope not in Scope.values or sensitivity not in Sensitivity.values:
            raise ValueError(f"unknown kind, scope or sensitivity ({kind}, {scope}, {sensitivity})")
        target = values.get("target", "")
        role = Group.objects.filter(name=target).first() if scope == Scope.ROLE else None
        customer = customer_by_id(customer_id=int(target)) if scope == Scope.CUSTOMER and target.isdigit() else None
        person = None
        if scope == Scope.USER:
            person = User.objects.filter(username=target).first() if target else actor
        return MemoryDraft(
            text=values.get("text", ""),
            kind=kind,
            scope=scope,
            scope_role=role,
            scope_customer=customer,
            scope_user=person,
            sensitivity=sensitivity,
        )
