from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _configure_search_session(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor != "postgresql":
        return
    from knowledge.search import session_settings

    with connection.cursor() as cursor:
        cursor.execute(session_settings())


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
