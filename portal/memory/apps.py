from __future__ import annotations

from django.apps import AppConfig


class MemoryConfig(AppConfig):
    name = "portal.memory"
    label = "memory"
    verbose_name = "AI memory"
