"""Short database reads of one request run side by side on pooled connections of their own.

A question's searches (the knowledge base's two legs, the memory search) and its history are independent
reads of a few milliseconds each, mostly spent waiting for PostgreSQL: on a second connection one runs while
the caller's thread runs another, so a question takes the longest of them, not their sum.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection

T = TypeVar("T")

# Reads running at once per process, each holding a pooled connection meanwhile: with the web process's own
# phases (ASSISTANT_DB_CONCURRENCY) within the pool's DB_POOL_MAX_SIZE.
THREADS = 8
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _parallel_executor() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="parallel-read")
    return _executor


def parallel_reads_possible() -> bool:
    """Only with a connection pool (a second connection costs nothing to take) and outside a transaction:
    the other connection could not see what this transaction has not committed. KNOWLEDGE_SEARCH_PARALLEL_LEGS
    turns it off."""
    return (
        bool(settings.KNOWLEDGE_SEARCH_PARALLEL_LEGS)
        and "pool" in connection.settings_dict.get("OPTIONS", {})
        and not connection.in_atomic_block
    )


def submit_on_own_connection(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T] | None:
    """`function(*args, **kwargs)` started on a thread with a pooled connection of its own when a second
    connection may serve this one's work (parallel_reads_possible); None when not: the caller runs it.

    It runs in a copy of the caller's context, so what the caller's phase set up holds there too: the
    configuration generation the phase pinned, and an audit batch, which then also queues its events. The
    function must not submit work of its own here (a full pool of waiting threads would wait forever).
    """
    if not parallel_reads_possible():
        return None
    context = contextvars.copy_context()

    def run() -> T:
        try:
            return context.run(function, *args, **kwargs)
        finally:
            connection.close()  # this thread's connection goes back to the pool

    return _parallel_executor().submit(run)
