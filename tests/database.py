"""The test suite's database: the portal's own role for the tests, a superuser for the harness.

The tests connect as the real, non-superuser portal role (settings.DATABASES), so a privilege the portal
lacks fails in the tests as it would in production. Three things need the superuser, and get it through a
separate connection, exactly as an attacker with superuser rights would:

* creating and dropping the test databases (the portal role may not create databases; each one is
  prepared as the embedded bootstrap prepares the real one: owned by the superuser, pgvector, grants);
* emptying the append-only audit table when Django flushes the tables between transactional tests;
* the tamper tests, which change events with the triggers switched off (`superuser_sql`). The superuser
  sees only committed rows, so those tests are `transaction=True`.

On the embedded server the superuser is settings.DATABASE_SUPERUSER. With DATABASE_URL set, give one in
TEST_DATABASE_SUPERUSER_URL (postgres://...; its database name is replaced by the test database's).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from audit.hardening import AUDIT_TABLE

ERROR_NO_SUPERUSER = (
    "These tests need a PostgreSQL superuser: with DATABASE_URL set, give one in TEST_DATABASE_SUPERUSER_URL."
)


def superuser_conninfo(dbname: str | None = None) -> dict[str, Any]:
    from django.conf import settings
    from django.db import connection

    name = dbname or connection.settings_dict["NAME"]
    if settings.DATABASE_SUPERUSER:
        return {**settings.DATABASE_SUPERUSER, "dbname": name}
    url = os.environ.get("TEST_DATABASE_SUPERUSER_URL", "")
    if url:
        return {"conninfo": url, "dbname": name}
    raise RuntimeError(ERROR_NO_SUPERUSER)


def superuser_connect(dbname: str | None = None, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    """A connection to the test database (or `dbname`) as the superuser; commits when its block ends."""
    return psycopg.connect(**superuser_conninfo(dbname), autocommit=autocommit)


def portal_connect() -> psycopg.Connection[Any]:
    """A connection of its own as the role the portal connects as (settings.DATABASES), in autocommit."""
    from django.db import connection

    database = connection.settings_dict
    params = {"host": database["HOST"], "port": database["PORT"], "user": database["USER"],
              "password": database["PASSWORD"], "dbname": database["NAME"]}  # fmt: skip
    return psycopg.connect(**{name: value for name, value in params.items() if value}, autocommit=True)


def other_connection_sql(statement: str, params: Any = None) -> None:
    """Write as another process would: the portal's role, a connection of its own, committed at once."""
    with portal_connect() as conn:
        conn.execute(statement, params)


def in_another_thread(work: Callable[[], Any]) -> None:
    """Run Django code on a connection of its own (another thread), committed when it returns; its exception,
    if any, is raised here."""
    import threading

    from django.db import connections

    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller
            errors.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def superuser_sql(statement: str, params: Any = None) -> None:
    """Change rows the way a database superuser could: triggers switched off, committed at once."""
    with superuser_connect() as conn, conn.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(statement, params)


def empty_audit_table(dbname: str) -> None:
    with superuser_connect(dbname) as conn, conn.cursor() as cursor:
        cursor.execute("SET LOCAL lock_timeout = '120s'")  # fail loudly rather than hang on a forgotten lock
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(AUDIT_TABLE)))


def install() -> None:
    """Create test databases and empty the audit table through the superuser (called from pytest_configure)."""
    from django.conf import settings
    from django.db.backends.base.operations import BaseDatabaseOperations
    from django.db.backends.postgresql.creation import DatabaseCreation
    from django.db.backends.postgresql.operations import DatabaseOperations

    if settings.DATABASE_SUPERUSER:
        # private methods of Django's PostgreSQL backend (django-stubs does not list them)
        DatabaseCreation._execute_create_test_db = _create_test_database  # type: ignore[attr-defined]
        DatabaseCreation._destroy_test_db = _destroy_test_database  # type: ignore[attr-defined]
    original_sql_flush = DatabaseOperations.sql_flush
    original_execute_sql_flush = DatabaseOperations.execute_sql_flush

    def sql_flush(self: BaseDatabaseOperations, style: Any, tables: Sequence[str], **kwargs: Any) -> list[str]:
        # the portal role may not TRUNCATE the audit table (nor switch its trigger off): leave it out here...
        self._flush_audit_table = AUDIT_TABLE in tables  # type: ignore[attr-defined]
        return original_sql_flush(self, style, [table for table in tables if table != AUDIT_TABLE], **kwargs)

    def execute_sql_flush(self: BaseDatabaseOperations, sql_list: Iterable[str]) -> None:
        # ...and empty it through the superuser, the way only someone with superuser rights can
        if getattr(self, "_flush_audit_table", False):
            self._flush_audit_table = False  # type: ignore[attr-defined]
            empty_audit_table(self.connection.settings_dict["NAME"])
        original_execute_sql_flush(self, sql_list)

    DatabaseOperations.sql_flush = sql_flush  # type: ignore[method-assign]
    DatabaseOperations.execute_sql_flush = execute_sql_flush  # type: ignore[method-assign]


def _create_test_database(self: Any, cursor: Any, parameters: dict[str, str], keepdb: bool = False) -> None:
    from django.conf import settings
    from django.db.backends.utils import strip_quotes

    from portal.embedded import database_prepare

    name = strip_quotes(parameters["dbname"])
    if keepdb and self._database_exists(cursor, name):
        return
    with superuser_connect("postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    database_prepare(settings.DATABASE_SUPERUSER["host"], name)


def _destroy_test_database(self: Any, test_database_name: str, verbosity: int) -> None:
    self.connection.close_pool()
    with superuser_connect("postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(test_database_name)))
