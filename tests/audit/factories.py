from __future__ import annotations

from typing import Any

from django.db import connection, transaction

from audit.chain import GENESIS_HASH, event_hash
from audit.models import AuditEvent
from audit.services import audit


def write_events(count: int, *, actor: Any = None, action: str = "test.event", **kwargs: Any) -> list[AuditEvent]:
    return [audit(actor=actor, action=action, details={"n": n, **kwargs.pop("details", {})}, **kwargs)
            for n in range(count)]  # fmt: skip


def superuser_sql(sql: str, params: list[Any] | None = None) -> None:
    """Change rows the way a database superuser could: with the append-only triggers switched off."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params or [])


def rewrite_chain_from(seq: int, *, new_action: str = "test.rewritten") -> None:
    """The strongest attack on the chain alone: change one event and recompute every hash after it."""
    columns = ("id", "seq", "created_at", "actor_id", "actor_username", "actor_roles", "action", "object_type",
               "object_id", "outcome", "details", "previous_hash", "hash")  # fmt: skip
    rows = [dict(zip(columns, row, strict=True)) for row in AuditEvent.objects.order_by("seq").values_list(*columns)]
    previous = GENESIS_HASH
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        for row in rows:
            if row["seq"] == seq:
                row["action"] = new_action
            if row["seq"] >= seq:
                row["previous_hash"] = previous
                row["hash"] = event_hash(row)
                cursor.execute(
                    "UPDATE audit_auditevent SET action = %s, previous_hash = %s, hash = %s WHERE id = %s",
                    [row["action"], row["previous_hash"], row["hash"], row["id"]],
                )
            previous = row["hash"]
