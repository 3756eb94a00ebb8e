"""The heartbeat a running job renews from a thread of its own (portal.core.jobs)."""

from __future__ import annotations

import threading
from typing import Any

from portal.core import jobs


def test_the_heartbeat_beats_while_the_job_runs_and_stops_with_it() -> None:
    beats = threading.Semaphore(0)
    with jobs.Heartbeat(beats.release, interval=0.01) as heartbeat:
        assert beats.acquire(timeout=30) and beats.acquire(timeout=30)  # at least twice, while the block runs
    assert not heartbeat._thread.is_alive()


def test_a_failing_beat_is_retried_at_the_next_interval() -> None:
    beats = threading.Semaphore(0)
    calls = {"n": 0}

    def flaky() -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("database restarting")
        beats.release()

    with jobs.Heartbeat(flaky, interval=0.01):
        assert beats.acquire(timeout=30)
    assert calls["n"] >= 2


def test_the_beat_interval_leaves_several_beats_per_lease(settings: Any) -> None:
    settings.JOBS_STALE_AFTER_SECONDS = 300
    assert jobs.heartbeat_interval() == 60
    settings.JOBS_STALE_AFTER_SECONDS = 5
    assert jobs.heartbeat_interval() == 1
