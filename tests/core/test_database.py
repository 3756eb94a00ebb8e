from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection


@pytest.mark.django_db
def test_pgvector_is_enabled_and_recent() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    assert row is not None, "the vector extension is not enabled"
    major, minor = (int(part) for part in row[0].split(".")[:2])
    assert (major, minor) >= (0, 7)


@pytest.mark.django_db
def test_vectors_really_work() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT '[1,0,0]'::vector <=> '[0,1,0]'::vector")
        assert cursor.fetchone()[0] == pytest.approx(1.0)


def test_the_embedded_server_is_used_without_database_url() -> None:
    if settings.DATABASE_URL:
        pytest.skip("DATABASE_URL is set: the suite runs against an external server")
    database = settings.DATABASES["default"]
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert database["HOST"].startswith("/"), "the embedded server listens on a Unix socket only"


def test_the_vector_migration_explains_a_missing_pgvector() -> None:
    from importlib import import_module

    migration = import_module("knowledge.migrations.0001_vector_extension")

    class Cursor:
        def __enter__(self) -> Cursor:
            return self

        def __exit__(self, *args: object) -> None:
            return None

        def execute(self, sql: str, params: object = None) -> None:
            self.sql = sql

        def fetchone(self) -> None:
            return None  # the server has no vector extension

    class Editor:
        class connection:  # noqa: N801 - mimics schema_editor.connection
            @staticmethod
            def cursor() -> Cursor:
                return Cursor()

    with pytest.raises(RuntimeError) as error:
        migration.enable_vector(None, Editor())
    assert str(error.value) == migration.ERROR_PGVECTOR_MISSING
