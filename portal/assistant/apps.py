from __future__ import annotations

from django.apps import AppConfig


class AssistantConfig(AppConfig):
    name = "portal.assistant"
    label = "assistant"
    verbose_name = "Assistant"
