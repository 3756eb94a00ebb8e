"""Callbacks run after a customer change commits (registered by apps built on top, e.g. workflow triggers).

Callbacks take ids as keyword arguments and should only queue work: a failing callback is logged and never fails
the change that was made.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import transaction

logger = logging.getLogger(__name__)

EVENTS = ("customer_created", "interaction_added")
_callbacks: dict[str, list[Callable[..., None]]] = {event: [] for event in EVENTS}


def register(event: str, callback: Callable[..., None]) -> None:
    if callback not in _callbacks[event]:
        _callbacks[event].append(callback)


def _run(event: str, ids: dict[str, int]) -> None:
    for callback in list(_callbacks[event]):
        try:
            callback(**ids)
        except Exception:  # noqa: BLE001 - a listener's failure must not fail the customer change
            logger.exception("customers: a %s callback failed", event)


def emit_on_commit(event: str, **ids: int) -> None:
    transaction.on_commit(lambda: _run(event, ids))
