from __future__ import annotations

import weakref
from typing import Any

from django.apps import AppConfig
from django.db.backends.signals import connection_created

# The settings each physical connection was given (knowledge.search.session_settings), by connection. With
# the connection pool, Django sends connection_created at every checkout, i.e. at every database phase of a
# streamed answer: a SET round trip each time for settings the pooled connection still has. A connection
# that reconnects is a new object; a changed setting (another text) is sent again.
_configured: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _configure_search_session(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor != "postgresql":
        return
    from knowledge.search import session_settings

    statement = session_settings()
    raw = connection.connection
    if raw is not None and _configured.get(raw) == statement:
        return
    with connection.cursor() as cursor:
        cursor.execute(statement)
    # connection_created comes in autocommit mode, so the settings are committed, not undone by a rollback
    if raw is not None:
        _configured[raw] = statement


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    verbose_name = "Knowledge bases"

    def ready(self) -> None:
        connection_created.connect(_configure_search_session, dispatch_uid="knowledge.search_session")

        from audit import links
        from knowledge.selectors import documents_for_user, knowledge_bases_for_user

        links.register_visibility(
            "knowledge.document", links.numeric_check(lambda viewer: documents_for_user(user=viewer))
        )
        links.register_visibility(
            "knowledge.knowledgebase", links.numeric_check(lambda viewer: knowledge_bases_for_user(user=viewer))
        )
