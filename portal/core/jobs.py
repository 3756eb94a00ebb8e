"""Leases of background jobs: a running job renews its heartbeat, and a sweep queues again the jobs whose
heartbeat stopped.

Why a heartbeat: the embedded (filesystem) broker deletes a message when a worker fetches it, and Redis only
hands an unacknowledged message out again after its visibility timeout (longer than the hard time limit, on
purpose), so after `kill -9`, an out-of-memory kill or a lost host nothing would run the job again. The sweep
tells a dead attempt from a slow one by the heartbeat alone: a live worker renews it every few seconds from a
thread of its own (also while it parses a large PDF, where the job has no natural checkpoint), a dead one
cannot. A job that is queued again resumes from what the dead attempt stored; the jobs are written so that an
attempt still alive after all (a machine so loaded that the thread missed its beats) and the new one can both
run to the end without duplicating anything.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from types import TracebackType

from django.conf import settings
from django.db import connections
from django.utils import timezone

logger = logging.getLogger(__name__)

ERROR_INTERRUPTED = "The job was interrupted {count} times (its worker stopped); start it again."


def stale_after() -> dt.timedelta:
    """A running job without a heartbeat for this long is taken as dead (JOBS_STALE_AFTER_SECONDS)."""
    return dt.timedelta(seconds=settings.JOBS_STALE_AFTER_SECONDS)


def stale_before(now: dt.datetime | None = None) -> dt.datetime:
    return (now or timezone.now()) - stale_after()


def heartbeat_interval() -> float:
    # Five beats per lease: one late beat on a busy machine does not make a live job look dead.
    return max(0.2, settings.JOBS_STALE_AFTER_SECONDS / 5)


def max_requeues() -> int:
    """After this many requeues of one attempt the job fails instead: it probably kills its worker itself."""
    return int(settings.JOBS_MAX_REQUEUES)


class Heartbeat:
    """Calls `beat` every `interval` seconds from a thread while the `with` block runs.

    `beat` writes the job's heartbeat column (one short UPDATE on the thread's own database connection, closed
    when the block ends); an error in it is logged and the next beat tries again.
    """

    def __init__(self, beat: Callable[[], object], *, interval: float | None = None) -> None:
        self._beat = beat
        self._interval = heartbeat_interval() if interval is None else interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            while not self._stop.wait(self._interval):
                try:
                    self._beat()
                except Exception:  # noqa: BLE001 - a database hiccup must not end the job it watches
                    logger.exception("jobs: heartbeat failed")
        finally:
            connections.close_all()  # this thread's connections only
