"""Nothing phones home, checked where native code cannot hide: the system calls of the whole portal.

The real `manage.py run` (web server, Celery worker with beat, embedded PostgreSQL) starts under `strace -f`
in its own folders and a bare environment (tests/core/portal_run.py says why), a user's journey runs over
HTTP, SIGINT stops it, and the trace must show no connect or send to an address off this machine and no DNS
query from any process. A second run inside a network namespace that has only loopback shows that the
journey needs nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest

from portal.offline import TELEMETRY_QUEUE
from tests.conftest import REPO_ROOT
from tests.core.portal_run import PORTAL_STOPPED, Portal, RunResult
from tests.core.strace_report import TraceReport, parse_trace_file

# A cold start (model export, demo ingestion) plus the journey, traced, on a loaded 2-core machine. It keeps
# both cores busy for a while, so it runs in the browser tests' xdist group, never beside their timeouts.
pytestmark = [pytest.mark.syscalls, pytest.mark.xdist_group("browser"), pytest.mark.timeout(900)]

JOURNEY_STEPS = 5  # signed in, uploaded, searched, asked, exported


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run this test: .ci/run installs strace and iproute2)")
    pytest.skip(reason)


@pytest.fixture
def strace() -> str:
    found = shutil.which("strace")
    if found is None:
        _unavailable("strace is not installed (apt-get install strace)")
    probe = subprocess.run([found, "-f", "-qq", "-e", "trace=none", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        _unavailable(f"strace cannot trace here: {probe.stderr.strip()}")
    return str(found)


def _explain(result: RunResult) -> str:
    return f"{result.error}\n--- portal output (last 6000 characters) ---\n{result.output[-6000:]}"


def _assert_journey_ran(result: RunResult) -> None:
    assert not result.error, _explain(result)
    assert len(result.steps) == JOURNEY_STEPS, _explain(result)


def _assert_stopped_cleanly(result: RunResult, home: Path) -> None:
    assert result.returncode == 0, _explain(result)
    assert PORTAL_STOPPED in result.output, _explain(result)
    assert "Traceback" not in result.output, _explain(result)
    # onnxruntime writes its device id the moment it creates a session when its telemetry is on
    queue = home / ".cache" / TELEMETRY_QUEUE
    assert not queue.exists(), f"onnxruntime's telemetry wrote {sorted(path.name for path in queue.iterdir())}"


def _assert_nothing_left_the_machine(report: TraceReport) -> None:
    # A trace that missed the processes would pass for the wrong reason.
    programs = " | ".join(report.programs)
    for expected in ("manage.py run", "celery -A portal worker", "postgres -D"):
        assert expected in programs, f"the trace did not follow {expected!r}: {programs}"
    assert sum(tally.unix_connections for tally in report.tallies.values()) > 0, "no connect was traced at all"
    summary = f"\nper process:\n{report.table()}"
    assert report.outbound == [], "connections off the machine:\n" + "\n".join(map(str, report.outbound)) + summary
    assert report.dns == [], "DNS queries:\n" + "\n".join(map(str, report.dns)) + summary
    print(summary)  # the figures for `pytest -s`


def test_the_portal_sends_nothing_off_the_machine_during_a_journey(strace: str, portal_dir: Path) -> None:
    portal = Portal(portal_dir, trace=True)
    result = portal.run_journey()
    _assert_journey_ran(result)
    assert portal.trace_path is not None
    _assert_nothing_left_the_machine(parse_trace_file(portal.trace_path))
    _assert_stopped_cleanly(result, portal.home)


def test_the_journey_works_in_a_network_namespace_with_only_loopback(strace: str, portal_dir: Path) -> None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        _unavailable("unshare (util-linux) or ip (iproute2) is not installed")
    if os.geteuid() != 0:
        _unavailable("a network namespace needs root (CI runs as root)")
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        _unavailable(f"no network namespace can be made here: {probe.stderr.strip()}")
    report_path = portal_dir / "report.json"
    # Only loopback, or the test proves nothing: the driver refuses to start when another interface exists.
    driver = (
        'ip link set lo up && "$0" -c "import socket, sys; sys.exit(socket.if_nameindex() != [(1, \'lo\')])" '
        '&& exec "$0" -m tests.core.portal_run --work-dir "$1" --strace --report "$2"'
    )
    command = ["unshare", "--net", "sh", "-c", driver, sys.executable, str(portal_dir), str(report_path)]
    completed = subprocess.run(
        command, cwd=REPO_ROOT, env={"PATH": os.environ["PATH"]}, capture_output=True, text=True, timeout=840
    )
    assert report_path.exists(), f"the driver did not run ({completed.returncode}): {completed.stderr[-3000:]}"
    result = RunResult(**json.loads(report_path.read_text(encoding="utf-8")))
    _assert_journey_ran(result)
    _assert_nothing_left_the_machine(parse_trace_file(portal_dir / "strace.txt"))
    _assert_stopped_cleanly(result, portal_dir / "home")
