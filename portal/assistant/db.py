"""Database work from the assistant's async code, in short bounded phases.

A streamed answer lasts seconds; holding a database connection for all of it would cap the number of
simultaneous answers at the server's connection limit. So the database is used in short phases, at most
ASSISTANT_DB_CONCURRENCY of them at once per process, each giving its connection back when it ends.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from portal.core.config_cache import config_generation_pinned

T = TypeVar("T")

_db_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def release_connection() -> None:
    """Close this thread's database connection, unless a transaction (e.g. a test's) still needs it."""
    if not connection.in_atomic_block:
        connection.close()


def _db_slot() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slot = _db_slots.get(loop)
    if slot is None:
        slot = _db_slots[loop] = asyncio.Semaphore(settings.ASSISTANT_DB_CONCURRENCY)
    return slot


async def db_phase(function: Callable[..., T], /, **kwargs: Any) -> T:
    """Run a synchronous database function from async code in a bounded phase, then free the connection."""

    def run() -> T:
        try:
            # a phase is a few milliseconds of one question: it reads the configuration generation once
            with config_generation_pinned():
                return function(**kwargs)
        finally:
            release_connection()

    # A connection opened outside a phase (routing's usage row, say) must not be held while waiting here.
    await sync_to_async(release_connection)()
    async with _db_slot():
        return await sync_to_async(run)()
