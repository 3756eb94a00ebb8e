"""Enable pgvector, failing with a message a deployer can act on when the server lacks it.

pgvector is not a trusted extension, so only a superuser may create it, and the portal connects as an
ordinary role (audit/hardening.py): the embedded bootstrap and `manage.py db_harden` create it beforehand,
and this migration then finds it and does nothing.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

INSUFFICIENT_PRIVILEGE = "42501"
ERROR_PGVECTOR_MISSING = (
    "The PostgreSQL server at DATABASE_URL does not have the pgvector extension installed. "
    "Install pgvector 0.7 or newer on that server (e.g. the postgresql-NN-pgvector package), or unset "
    "DATABASE_URL to use the embedded PostgreSQL, which ships with it."
)
ERROR_PGVECTOR_NOT_ENABLED = (
    "pgvector is installed on the PostgreSQL server at DATABASE_URL but not enabled in this database, and the "
    "portal's role may not enable it (it is not a trusted extension). As a superuser, run "
    "`CREATE EXTENSION vector;` in this database, or `python manage.py db_harden` with a superuser DATABASE_URL "
    "(see README, 'Running in production'), then migrate again."
)


def enable_vector(apps: Any, schema_editor: Any) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
        if cursor.fetchone() is not None:
            return  # created by a superuser beforehand: nothing to do, and no privilege needed
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        if cursor.fetchone() is None:
            raise RuntimeError(ERROR_PGVECTOR_MISSING)
        try:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except Exception as error:
            # Django wraps the driver's error; either carries SQLSTATE 42501 for "permission denied"
            if INSUFFICIENT_PRIVILEGE in (getattr(error, "sqlstate", None), getattr(error.__cause__, "sqlstate", None)):
                raise RuntimeError(ERROR_PGVECTOR_NOT_ENABLED) from error
            raise


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []
    operations = [migrations.RunPython(enable_vector, migrations.RunPython.noop)]
