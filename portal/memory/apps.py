from __future__ import annotations

from django.apps import AppConfig


class MemoryConfig(AppConfig):
    name = "portal.memory"
    label = "memory"
    verbose_name = "AI memory"

    def ready(self) -> None:
        from audit import links
        from portal.memory.selectors import memories_visible_to

        links.register_visibility(
            "memory.memoryitem", links.numeric_check(lambda viewer: memories_visible_to(user=viewer))
        )
