"""The portal's database role owns its tables but cannot change or remove audit events (audit/hardening.py).

Every attack runs on a connection of its own as that very role, the way a bug, an injected statement or a
SQL console reached through the portal would.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from io import StringIO
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from psycopg import sql

from audit import hardening
from audit.checks import audit_database_privileges
from audit.models import AuditEvent
from audit.protection import audit_protection_problems, embedded_audit_release, embedded_database_harden
from tests.audit.factories import write_events
from tests.conftest import REPO_ROOT
from tests.database import portal_connect, superuser_connect

embedded_only = pytest.mark.skipif(not settings.DATABASE_SUPERUSER, reason="needs the embedded server's superuser")

REPLACE_TRIGGER_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_event_reject_change() RETURNS trigger AS $$
BEGIN RETURN OLD; END; $$ LANGUAGE plpgsql
"""
REPLACE_LOCK_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_chain_lock_head(lock_key bigint, OUT head_seq bigint, OUT head_hash varchar)
RETURNS record AS $$ BEGIN head_seq := 0; END; $$ LANGUAGE plpgsql VOLATILE
"""
ATTACKS = {
    "disable every trigger": "ALTER TABLE audit_auditevent DISABLE TRIGGER ALL",
    "disable the update/delete trigger": "ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_no_update_delete",
    "make the trigger fire only for replicas": (
        "ALTER TABLE audit_auditevent ENABLE REPLICA TRIGGER audit_event_no_update_delete"
    ),
    "drop the trigger": "DROP TRIGGER audit_event_no_update_delete ON audit_auditevent",
    "drop the table": "DROP TABLE audit_auditevent",
    "truncate": "TRUNCATE audit_auditevent",
    "update": "UPDATE audit_auditevent SET action = 'test.forged'",
    "delete": "DELETE FROM audit_auditevent",
    "lock rows for update": "SELECT id FROM audit_auditevent FOR UPDATE",
    "switch triggers off for the session": "SET session_replication_role = replica",
    "take the table over": "ALTER TABLE audit_auditevent OWNER TO CURRENT_USER",
    "replace the trigger function with a no-op": REPLACE_TRIGGER_FUNCTION,
    "replace audit_chain_lock_head with a no-op": REPLACE_LOCK_FUNCTION,
    "drop the trigger function": "DROP FUNCTION audit_event_reject_change() CASCADE",
    "rename the table": "ALTER TABLE audit_auditevent RENAME TO audit_auditevent_old",
    "hide rows with a policy": "CREATE POLICY hide ON audit_auditevent USING (false)",
    "inherit from it": "CREATE TABLE audit_shadow () INHERITS (audit_auditevent)",
    "drop the schema with the table in it": "DROP SCHEMA public CASCADE",
    "create a schema to shadow the table": "CREATE SCHEMA portal",
    "act as the audit owner": f"SET ROLE {hardening.AUDIT_OWNER_ROLE}",
    "become a member of the audit owner": f"GRANT {hardening.AUDIT_OWNER_ROLE} TO CURRENT_USER",
    "create a database": "CREATE DATABASE audit_escape",
}


@pytest.mark.django_db
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_the_portal_role_cannot(attack: str) -> None:
    with portal_connect() as conn:
        conn.execute("SET lock_timeout = '30s'")  # a statement stuck on a lock fails instead of passing
        # PostgreSQL checks privileges before it looks at a single row: the refusal does not depend on the rows
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(ATTACKS[attack])


@pytest.mark.django_db
def test_the_portal_connects_as_an_ordinary_role_that_owns_its_other_tables() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
        user, superuser = cursor.fetchone()
        cursor.execute("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = ANY(%s)",
                       [["knowledge_chunk", "auth_user", "audit_auditexport", "django_migrations"]])  # fmt: skip
        owners = {owner for (owner,) in cursor.fetchall()}
        cursor.execute("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'audit_auditevent'")
        audit_owner = cursor.fetchone()[0]
    assert superuser is False
    assert owners == {user}
    assert audit_owner == hardening.AUDIT_OWNER_ROLE != user
    assert audit_protection_problems() == []


@pytest.mark.django_db
def test_the_portal_role_still_appends_reads_and_maintains_its_own_tables() -> None:
    (event,) = write_events(1)  # audit(): audit_chain_lock_head() and INSERT, as the portal role
    assert AuditEvent.objects.get(seq=event.seq).hash == event.hash
    with portal_connect() as conn:
        conn.execute("VACUUM ANALYZE knowledge_chunk")  # as bench_search and the evaluations do
        conn.execute("CREATE INDEX test_owner_may_index ON knowledge_chunk (id)")
        conn.execute("DROP INDEX test_owner_may_index")


def test_the_embedded_bootstrap_gives_the_portal_no_superuser_and_no_password() -> None:
    if not settings.DATABASE_SUPERUSER:
        pytest.skip("DATABASE_URL is set: the server's roles are the DBA's")
    assert settings.DATABASES["default"]["USER"] == hardening.PORTAL_ROLE
    assert settings.DATABASES["default"]["PASSWORD"] == ""  # pgserver trusts its socket (see portal/embedded.py)
    assert settings.DATABASE_SUPERUSER["user"] != hardening.PORTAL_ROLE


# ---- the system check ------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_system_check_is_clean_for_the_hardened_role() -> None:
    out = StringIO()
    call_command("check", "--database", "default", "--fail-level", "WARNING", stdout=out)
    assert audit_database_privileges(databases=["default"]) == []


@embedded_only
def test_the_system_check_warns_when_the_portal_connects_as_a_superuser() -> None:
    with superuser_connect() as conn, conn.cursor() as cursor:
        problems = hardening.problems(cursor)
    assert problems == [hardening.PROBLEM_SUPERUSER.format(role=settings.DATABASE_SUPERUSER["user"])]


@embedded_only
@pytest.mark.django_db
def test_an_audit_table_owned_by_the_portal_role_is_reported_and_hardened_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    role = connection.settings_dict["USER"]

    class AuditMigration:
        app_label = "audit"

    try:
        # what happens before an audit migration: the table goes back to the portal role for its duration
        assert embedded_audit_release(plan=[(AuditMigration(), False)])
        problems = audit_protection_problems()
        assert hardening.PROBLEM_TABLE_OWNER.format(role=role, owner=role) in problems
        assert any("audit_chain_lock_head" in problem for problem in problems)
        warnings = audit_database_privileges(databases=["default"])
        assert {warning.id for warning in warnings} == {"audit.W001"}
        assert len(warnings) == len(problems)
    finally:
        with caplog.at_level(logging.INFO, logger="audit.protection"):
            done = embedded_database_harden()  # what follows every migrate
    assert any(statement.sql.endswith(f"OWNER TO {hardening.quote(hardening.AUDIT_OWNER_ROLE)}") for statement in done)
    assert "database hardened" in caplog.text
    assert audit_protection_problems() == []
    assert embedded_database_harden() == []  # idempotent: nothing left to do


@embedded_only
@pytest.mark.django_db
def test_a_disabled_trigger_is_reported_and_switched_back_on() -> None:
    with superuser_connect() as conn:
        conn.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_no_update_delete")
    try:
        assert hardening.PROBLEM_TRIGGER_DISABLED.format(trigger="audit_event_no_update_delete") in (
            audit_protection_problems()
        )
    finally:
        embedded_database_harden()
    assert audit_protection_problems() == []


# ---- a database created by the previous version, when the portal connected as `postgres` ----------------------
def _migration_sql(name: str) -> str:
    from importlib import import_module

    return str(import_module(f"audit.migrations.{name}").CREATE)


@pytest.fixture
def old_database() -> Any:
    """A scratch database laid out as before: everything owned by the superuser."""
    if not settings.DATABASE_SUPERUSER:
        pytest.skip("DATABASE_URL is set: the embedded bootstrap does not run")
    name = f"test_portal_upgrade_{os.getpid()}"
    with superuser_connect("postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with superuser_connect(name) as conn:
        conn.execute("CREATE TABLE knowledge_chunk (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY)")
        conn.execute("CREATE TABLE audit_auditevent (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
                     " seq bigint UNIQUE, hash varchar(64))")  # fmt: skip
        conn.execute(_migration_sql("0002_append_only_trigger"))
        conn.execute(_migration_sql("0004_chain_head_function"))
        conn.execute("INSERT INTO audit_auditevent (seq, hash) VALUES (1, 'x')")
    yield name
    with superuser_connect("postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_the_bootstrap_moves_an_old_database_to_least_privilege_once(
    old_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    from portal.embedded import database_prepare

    with caplog.at_level(logging.WARNING, logger="portal.embedded"):
        database_prepare(settings.DATABASE_SUPERUSER["host"], old_database)
    assert "given to their least-privilege owners" in caplog.text
    with superuser_connect(old_database) as conn:
        owners = dict(conn.execute("SELECT relname, pg_get_userbyid(relowner) FROM pg_class WHERE relname IN"
                                   " ('knowledge_chunk', 'audit_auditevent')").fetchall())  # fmt: skip
        functions = dict(conn.execute("SELECT proname, pg_get_userbyid(proowner) FROM pg_proc WHERE proname LIKE"
                                      " 'audit\\_%'").fetchall())  # fmt: skip
        assert conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() is not None
        cursor = conn.cursor()
        assert hardening.problems(cursor, role=hardening.PORTAL_ROLE) == []
    assert owners == {"knowledge_chunk": hardening.PORTAL_ROLE, "audit_auditevent": hardening.AUDIT_OWNER_ROLE}
    assert set(functions.values()) == {hardening.AUDIT_OWNER_ROLE} and len(functions) == 2
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="portal.embedded"):
        database_prepare(settings.DATABASE_SUPERUSER["host"], old_database)
    assert caplog.text == ""  # said once


# ---- pgvector is not a trusted extension ----------------------------------------------------------------------
def test_the_vector_migration_explains_that_a_superuser_must_enable_pgvector(old_database: str) -> None:
    from importlib import import_module

    migration = import_module("knowledge.migrations.0001_vector_extension")
    with superuser_connect(old_database) as conn:
        # as on a server where nobody enabled pgvector in this database yet
        assert conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() is None

    class Editor:
        connection = psycopg.connect(host=settings.DATABASE_SUPERUSER["host"], user=hardening.PORTAL_ROLE,
                                     dbname=old_database, autocommit=True)  # fmt: skip

    try:
        with pytest.raises(RuntimeError) as error:
            migration.enable_vector(None, Editor())
    finally:
        Editor.connection.close()
    assert str(error.value) == migration.ERROR_PGVECTOR_NOT_ENABLED


# ---- on a server: DATABASE_URL, `manage.py db_harden` --------------------------------------------------------
def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


# four manage.py runs, each with its own 600 s ceiling (a migrate of every app on a busy machine takes minutes)
@pytest.mark.timeout(2400)
def test_a_server_is_set_up_with_migrate_then_db_harden(old_database: str, subprocess_env: dict[str, str]) -> None:
    """The README's production steps, on a fresh database of the embedded server reached through DATABASE_URL."""
    with superuser_connect(old_database) as conn:  # a fresh database, as a DBA creates it
        conn.execute("DROP TABLE audit_auditevent, knowledge_chunk CASCADE")
        conn.execute("DROP FUNCTION audit_chain_lock_head(bigint), audit_event_reject_change()")
    socket = quote(settings.DATABASE_SUPERUSER["host"], safe="")
    env = dict(subprocess_env, PORTAL_DEBUG="0", DB_POOL="0")
    as_portal = dict(env, DATABASE_URL=f"postgres://{hardening.PORTAL_ROLE}@{socket}/{old_database}")
    as_superuser = dict(env, DATABASE_URL=f"postgres://{settings.DATABASE_SUPERUSER['user']}@{socket}/{old_database}")

    first = _manage(as_superuser, "db_harden")  # before migrate: pgvector and the grant on the schema
    assert first.returncode == 0, first.stdout + first.stderr
    assert "CREATE EXTENSION IF NOT EXISTS vector" in first.stdout and "does not exist yet" in first.stdout
    migrated = _manage(as_portal, "migrate", "--no-input", "-v", "0")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    warned = _manage(as_portal, "check", "--database", "default", "--fail-level", "WARNING")
    assert warned.returncode != 0 and "audit.W001" in warned.stderr + warned.stdout
    second = _manage(as_superuser, "db_harden")  # after migrate: the audit table goes to its owner
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"OWNER TO {hardening.quote(hardening.AUDIT_OWNER_ROLE)}" in second.stdout
    # db_harden ends by running the system check's own test for the role, and exits 1 if anything is left
    assert "'portal' cannot change or remove audit events" in second.stdout
    with superuser_connect(old_database) as conn, conn.cursor() as cursor:
        assert hardening.problems(cursor, role=hardening.PORTAL_ROLE) == []


@pytest.mark.django_db
def test_db_harden_finds_nothing_to_do_where_the_bootstrap_has_run() -> None:
    out = StringIO()
    call_command("db_harden", stdout=out)
    assert "Nothing to do" in out.getvalue()
    assert "cannot change or remove audit events" in out.getvalue()


@embedded_only
@pytest.mark.django_db
def test_db_harden_release_hands_the_table_back_for_a_migration_and_sql_only_prints() -> None:
    role = connection.settings_dict["USER"]
    try:
        released = StringIO()
        call_command("db_harden", "--release", stdout=released, stderr=StringIO())
        assert f"OWNER TO {hardening.quote(role)}" in released.getvalue()
        assert hardening.PROBLEM_TABLE_OWNER.format(role=role, owner=role) in audit_protection_problems()
        printed = StringIO()
        call_command("db_harden", "--sql", stdout=printed)
        assert f"OWNER TO {hardening.quote(hardening.AUDIT_OWNER_ROLE)};" in printed.getvalue()
        assert audit_protection_problems() != []  # --sql ran nothing
        call_command("db_harden", stdout=StringIO())
        assert audit_protection_problems() == []
    finally:
        embedded_database_harden()


@pytest.mark.django_db
def test_db_harden_refuses_to_run_without_a_superuser(settings: Any) -> None:
    from django.core.management.base import CommandError

    from audit.management.commands.db_harden import ERROR_NOT_SUPERUSER

    settings.DATABASE_SUPERUSER = {}  # as with DATABASE_URL: only the connection the portal uses
    with pytest.raises(CommandError) as error:
        call_command("db_harden")
    assert str(error.value) == ERROR_NOT_SUPERUSER.format(user=connection.settings_dict["USER"])
