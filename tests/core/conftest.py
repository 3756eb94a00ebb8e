from __future__ import annotations

import shutil
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest


@pytest.fixture
def portal_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """Folders for one real portal run, outside pytest's tmp_path.

    As root, the embedded PostgreSQL runs as the `pgserver` user, which must traverse every parent folder;
    pgserver opens them up (o+rx), but each new pytest session on the machine (other worktrees, other
    engineers) sets /tmp/pytest-of-root back to 0700, and the database then fails mid-run with "Permission
    denied". A folder of its own under the system temp folder is left alone. Kept when the test failed.
    """
    path = Path(tempfile.mkdtemp(prefix="portal-run-"))
    yield path
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"portal run kept in {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
