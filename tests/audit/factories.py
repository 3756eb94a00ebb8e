from __future__ import annotations

from typing import Any

import pytest

from audit.chain import GENESIS_HASH, event_hash
from audit.models import AuditEvent
from audit.services import audit
from tests.database import superuser_connect, superuser_sql

__all__ = ["TAMPERING", "rewrite_chain_from", "superuser_sql", "write_events"]


def write_events(count: int, *, actor: Any = None, action: str = "test.event", **kwargs: Any) -> list[AuditEvent]:
    return [audit(actor=actor, action=action, details={"n": n, **kwargs.pop("details", {})}, **kwargs)
            for n in range(count)]  # fmt: skip


# Tampering needs the superuser's own connection, which sees only committed rows: tests that tamper are
# `transaction=True` (TAMPERING marks them; the portal role itself cannot do any of this, see test_privileges).
TAMPERING = pytest.mark.django_db(transaction=True)


def rewrite_chain_from(seq: int, *, new_action: str = "test.rewritten") -> None:
    """The strongest attack on the chain alone: change one event and recompute every hash after it."""
    columns = ("id", "seq", "created_at", "actor_id", "actor_username", "actor_roles", "action", "object_type",
               "object_id", "outcome", "details", "previous_hash", "hash")  # fmt: skip
    rows = [dict(zip(columns, row, strict=True)) for row in AuditEvent.objects.order_by("seq").values_list(*columns)]
    previous = GENESIS_HASH
    with superuser_connect() as conn, conn.cursor() as cursor:
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
