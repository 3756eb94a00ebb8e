"""A router with nothing carried over between tests: no retry pauses, no cooldowns, no cached Router."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from portal.routing.router import cooldowns, router_cache


@contextmanager
def fresh_router(settings: Any) -> Iterator[None]:
    settings.ROUTING_RETRY_MIN_SECONDS = 0
    cooldowns.clear()
    router_cache.clear()
    yield
    cooldowns.clear()
