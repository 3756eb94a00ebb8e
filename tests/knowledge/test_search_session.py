"""The vector search's session settings go to each physical connection once, not at every pool checkout."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from knowledge.apps import _configure_search_session
from knowledge.search import session_settings

pytestmark = pytest.mark.django_db


def _show(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SHOW {name}")
        return str(cursor.fetchone()[0])


def test_the_settings_are_sent_once_per_physical_connection(django_assert_num_queries: Any, settings: Any) -> None:
    connection.ensure_connection()
    _configure_search_session(sender=None, connection=connection)  # as at a checkout of a configured one
    assert _show("hnsw.ef_search") == str(settings.KNOWLEDGE_HNSW_EF_SEARCH)
    with django_assert_num_queries(0):
        _configure_search_session(sender=None, connection=connection)


def test_changed_settings_are_sent_again(settings: Any) -> None:
    connection.ensure_connection()
    settings.KNOWLEDGE_HNSW_EF_SEARCH = 123
    assert "123" in session_settings()
    _configure_search_session(sender=None, connection=connection)
    assert _show("hnsw.ef_search") == "123"
