"""Enable pgvector, failing with a message a deployer can act on when the server lacks it."""

from __future__ import annotations

from typing import Any

from django.db import migrations

ERROR_PGVECTOR_MISSING = (
    "The PostgreSQL server at DATABASE_URL does not have the pgvector extension installed. "
    "Install pgvector 0.7 or newer on that server (e.g. the postgresql-NN-pgvector package), or unset "
    "DATABASE_URL to use the embedded PostgreSQL, which ships with it."
)


def enable_vector(apps: Any, schema_editor: Any) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        if cursor.fetchone() is None:
            raise RuntimeError(ERROR_PGVECTOR_MISSING)
        cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []
    operations = [migrations.RunPython(enable_vector, migrations.RunPython.noop)]
