from __future__ import annotations

from django.apps import AppConfig


class AssistantConfig(AppConfig):
    name = "portal.assistant"
    label = "assistant"
    verbose_name = "Assistant"

    def ready(self) -> None:
        from audit import links
        from knowledge import consumers, ranking
        from portal.assistant.selectors import conversations_for_user, profiles_using_knowledge_base, ranker_signals

        # nobody but its owner opens a conversation, auditors included: their event pages link no other's
        links.register_visibility(
            "assistant.conversation", links.numeric_check(lambda viewer: conversations_for_user(user=viewer))
        )
        consumers.register(profiles_using_knowledge_base)  # the knowledge-base page says which profiles search it
        # the retrieval ranker learns from the questions whose answers were marked helpful, with what they cited
        ranking.register_signal_source(ranker_signals)
