"""What uses a knowledge base, as the knowledge-base page tells its readers ("which assistants search this?").

Knowledge sits below the feature apps and imports none of them, so an app that searches knowledge bases (the
assistant's profiles) registers a function here in its AppConfig.ready(); each returns what that viewer may be
told about the base's users, from that app's own selectors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Consumers:
    """Users of one knowledge base from one app: named ones, and how many more the viewer is not shown."""

    kind: str  # "assistant profile"
    names: list[str] = field(default_factory=list)
    hidden_count: int = 0

    @property
    def total(self) -> int:
        return len(self.names) + self.hidden_count


ConsumerLookup = Callable[..., Consumers]  # (*, knowledge_base_id: int, viewer: user) -> Consumers

_LOOKUPS: list[ConsumerLookup] = []


def register(lookup: ConsumerLookup) -> None:
    if lookup not in _LOOKUPS:
        _LOOKUPS.append(lookup)


def knowledge_base_consumers(*, knowledge_base_id: int, viewer: Any) -> list[Consumers]:
    return [lookup(knowledge_base_id=knowledge_base_id, viewer=viewer) for lookup in _LOOKUPS]
