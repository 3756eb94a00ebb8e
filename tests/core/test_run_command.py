"""`manage.py run` serves from several web processes and stops cleanly on SIGINT: web server processes,
worker and embedded database, with no traceback."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from portal.offline import MESSAGE_QUEUE_REMOVED, TELEMETRY_QUEUE
from tests.core.portal_run import PORTAL_STOPPED, Portal

# A cold start of the portal: in the browser tests' xdist group, never beside their timeouts.
pytestmark = [pytest.mark.xdist_group("browser"), pytest.mark.timeout(600)]


def test_two_web_processes_serve_and_sigint_to_the_run_command_stops_everything_and_says_so(portal_dir: Path) -> None:
    portal = Portal(portal_dir)
    # what a run without the privacy switches leaves in the home folder
    leftover = portal.home / ".cache" / TELEMETRY_QUEUE
    leftover.mkdir(parents=True)
    (leftover / "deviceid").write_text("c0ffee")
    (leftover / "onnxruntime.db").write_bytes(b"SQLite format 3\x00")
    try:
        portal.start()
        portal.wait_until_serving()
        assert portal.result.worker_pids, "the run command started no worker"
        web_pids = portal.web_pids()
        assert len(web_pids) == 2, portal.output()[-4000:]  # PORTAL_WEB_WORKERS=2
        assert portal.web_pids_serving(2) == set(web_pids), "both web processes answer requests"
        portal.interrupt()  # SIGINT to the run command's pid only, as `kill -INT` does
        still_running = [
            " ".join(process.cmdline())
            for process in psutil.process_iter(["cmdline"])
            if str(portal.var_dir) in " ".join(process.info["cmdline"] or [])
        ]
    finally:
        portal.kill()
    output = portal.output()
    assert portal.result.returncode == 0, output[-4000:]
    assert output.rstrip().endswith(PORTAL_STOPPED), output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    assert portal.result.workers_left == []
    assert [pid for pid in web_pids if psutil.pid_exists(pid)] == []
    assert still_running == []  # the embedded PostgreSQL included
    assert not leftover.exists()
    assert not (portal.home / ".cache" / "Microsoft").exists()  # its empty parents go too
    assert output.count(MESSAGE_QUEUE_REMOVED.split("%s")[0]) == 1, "the removal is logged once, by one process"


def test_the_web_process_count_is_one_per_core_unless_set() -> None:
    import os

    from portal.core.management.commands.run import web_workers

    assert web_workers(0) == len(os.sched_getaffinity(0))
    assert web_workers(3) == 3
