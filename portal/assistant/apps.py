from __future__ import annotations

from django.apps import AppConfig


class AssistantConfig(AppConfig):
    name = "portal.assistant"
    label = "assistant"
    verbose_name = "Assistant"

    def ready(self) -> None:
        from audit import links
        from portal.assistant.selectors import conversations_for_user

        # nobody but its owner opens a conversation, auditors included: their event pages link no other's
        links.register_visibility(
            "assistant.conversation", links.numeric_check(lambda viewer: conversations_for_user(user=viewer))
        )
