"""Keeping the audit table out of the portal role's reach on the embedded server, around `migrate`.

A fresh database gets its audit table from a migration the portal role runs, so the role owns it at first:
after every `migrate` the embedded server's superuser hands it (and its functions) to the audit owner
(audit/hardening.py). A migration that changes the audit table itself needs the owner, so before such a
migration the superuser hands them back, and the hardening after it takes them again (at the next start,
if the migration failed). With DATABASE_URL nothing here runs: `manage.py db_harden` does it, with
credentials the portal never holds, and the system check in audit/checks.py says when it is due.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import connections

from audit import hardening

logger = logging.getLogger(__name__)


def superuser_connection(using: str = "default") -> Any:
    """A psycopg connection as the embedded server's superuser to the database of `using`."""
    import psycopg

    superuser = settings.DATABASE_SUPERUSER
    return psycopg.connect(
        host=superuser["host"], user=superuser["user"], dbname=connections[using].settings_dict["NAME"]
    )


def audit_protection_problems(*, using: str = "default") -> list[str]:
    with connections[using].cursor() as cursor:
        return hardening.problems(cursor)


def embedded_database_harden(*, using: str = "default") -> list[hardening.Statement]:
    """After `migrate` (and after a test flush): the superuser applies what the database lacks."""
    if not settings.DATABASE_SUPERUSER or not audit_protection_problems(using=using):
        return []
    with superuser_connection(using) as conn, conn.cursor() as cursor:
        hardening.begin(cursor)
        statements = hardening.database_statements(cursor)
        hardening.execute(cursor, statements)
    for statement in statements:
        logger.info("database hardened: %s (%s)", statement.sql, statement.why)
    return statements


def embedded_audit_release(*, plan: list[tuple[Any, bool]], using: str = "default") -> list[hardening.Statement]:
    """Before a `migrate` whose plan changes the audit app: hand its table back to the portal role."""
    if not settings.DATABASE_SUPERUSER or not any(migration.app_label == "audit" for migration, _ in plan):
        return []
    with superuser_connection(using) as conn, conn.cursor() as cursor:
        hardening.begin(cursor)
        statements = hardening.release_statements(cursor)
        hardening.execute(cursor, statements)
    if statements:
        logger.warning("audit migrations pending: the audit table belongs to the portal role until they are done")
    return statements
