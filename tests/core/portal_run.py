"""Start the real portal (`manage.py run`) in its own folders, drive a user's journey over HTTP, stop it.

Used by tests/core/test_no_phoning_home.py and test_run_command.py, in the test process or, for the run
inside a network namespace, as a script there (the portal's loopback is then out of the test's reach):

    python -m tests.core.portal_run --work-dir DIR [--strace] --report DIR/report.json

The portal gets a bare environment, as a new user's shell would give it: no privacy switch (it must set
them itself), no CI variable (onnxruntime turns its telemetry off by itself when it sees one, which would
hide a missing switch), and no network guard (the guard stops Python's own connects before they reach the
kernel, where strace is looking; here the kernel-level trace is the guard).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.core.strace_report import STRACE_OPTIONS

REPO_ROOT = Path(__file__).resolve().parents[2]

START_CEILING_SECONDS = 420  # a cold start exports and quantizes the embedding model; a loaded CI machine is slow
STEP_CEILING_SECONDS = 300  # ingestion of one small document, one background export
STOP_CEILING_SECONDS = 120
PORTAL_STOPPED = "Portal stopped."
QUEUE_REMOVED = "Removed onnxruntime's telemetry queue"
# Variables under which onnxruntime silently turns its telemetry off (read from libonnxruntime.so 1.32).
CI_VARIABLES = (
    "CI", "TF_BUILD", "GITHUB_ACTIONS", "GITLAB_CI", "CIRCLECI", "TRAVIS", "JENKINS_URL", "CODEBUILD_BUILD_ID",
    "BUILDKITE", "TEAMCITY_VERSION", "APPVEYOR", "BITBUCKET_BUILD_NUMBER", "ORT_RUNNING_UNIT_TESTS",
)  # fmt: skip
KEPT_VARIABLES = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR")
DOCUMENT_NAME = "zephyrine-lighthouse.md"
DOCUMENT_TEXT = (
    "# Zephyrine lighthouse\n\n"
    "The keeper of the Zephyrine lighthouse writes the tide into the logbook at 06:40 every morning, "
    "and rings the harbour office when the swell passes four metres.\n"
)
QUESTION = "When does the keeper of the Zephyrine lighthouse write the tide into the logbook?"
SEARCH_WORD = "Zephyrine"


class JourneyFailed(AssertionError):
    pass


@dataclass
class RunResult:
    returncode: int | None = None
    output: str = ""
    served_after_seconds: float | None = None
    journey_seconds: float | None = None
    steps: list[str] = field(default_factory=list)
    worker_pids: list[int] = field(default_factory=list)
    workers_left: list[int] = field(default_factory=list)
    error: str = ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def portal_environment(*, var_dir: Path, home: Path, port: int, web_workers: int = 2) -> dict[str, str]:
    env = {name: os.environ[name] for name in KEPT_VARIABLES if name in os.environ}
    env.update(
        HOME=str(home),
        PORTAL_VAR_DIR=str(var_dir),
        PORTAL_BIND=f"127.0.0.1:{port}",
        PORTAL_DEMO="1",
        PORTAL_WEB_WORKERS=str(web_workers),  # what a two-core machine gets by default, on any machine
        PYTHONUNBUFFERED="1",
    )
    assert not set(env) & set(CI_VARIABLES)
    return env


class Portal:
    """One `manage.py run`, optionally under strace, with its output in work_dir/portal.log."""

    def __init__(self, work_dir: Path, *, trace: bool = False, repo_root: Path = REPO_ROOT) -> None:
        self.repo_root = repo_root
        self.work_dir = work_dir
        self.var_dir = work_dir / "var"
        self.home = work_dir / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_path = work_dir / "portal.log"
        self.trace_path = work_dir / "strace.txt" if trace else None
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.result = RunResult()

    def start(self) -> None:
        command = [sys.executable, "manage.py", "run"]
        if self.trace_path is not None:
            command = ["strace", *STRACE_OPTIONS, "-o", str(self.trace_path), *command]
        env = portal_environment(var_dir=self.var_dir, home=self.home, port=self.port)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=self.repo_root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    @property
    def portal_pid(self) -> int:
        """The pid of `manage.py run` itself (under strace, the tracer's child)."""
        assert self.process is not None
        if self.trace_path is None:
            return self.process.pid
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for child in psutil.Process(self.process.pid).children():
                with contextlib.suppress(psutil.Error):
                    if "manage.py" in child.cmdline():
                        return int(child.pid)
            time.sleep(0.1)
        raise JourneyFailed("strace did not start manage.py")

    def wait_until_serving(self) -> None:
        assert self.process is not None
        started = time.monotonic()
        while time.monotonic() - started < START_CEILING_SECONDS:
            if self.process.poll() is not None:
                raise JourneyFailed(f"the portal exited ({self.process.returncode}) before serving")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/healthz", timeout=5).status_code == 200:
                    self.result.served_after_seconds = round(time.monotonic() - started, 1)
                    self.result.worker_pids = self._worker_pids()
                    return
            time.sleep(0.5)
        raise JourneyFailed(f"the portal did not serve within {START_CEILING_SECONDS} s")

    def _worker_pids(self) -> list[int]:
        with contextlib.suppress(psutil.Error):
            return [
                child.pid
                for child in psutil.Process(self.portal_pid).children(recursive=True)
                if "celery" in " ".join(child.cmdline())
            ]
        return []

    def web_pids(self) -> list[int]:
        """The web server's worker processes (uvicorn spawns them with multiprocessing)."""
        return [
            child.pid
            for child in psutil.Process(self.portal_pid).children()
            if "spawn_main" in " ".join(child.cmdline()) and "celery" not in " ".join(child.cmdline())
        ]

    def web_pids_serving(self, wanted: int) -> set[int]:
        """Send requests on fresh keep-alive connections until `wanted` web processes have answered one.

        Which process accepts a connection is up to the kernel. While the connection is still open after its
        answer, the process that answered is the one holding its socket (seen through psutil: no endpoint
        tells pids). A process still loading the portal answers nothing yet, so this waits up to the start
        ceiling.
        """
        serving: set[int] = set()
        deadline = time.monotonic() + START_CEILING_SECONDS
        while len(serving) < wanted and time.monotonic() < deadline:
            with httpx.Client(base_url=self.base_url, timeout=30) as client:
                try:
                    answered = client.get("/healthz").status_code == 200
                except httpx.HTTPError:  # a process busy starting (loading the model) may be slow to answer
                    continue
                if not answered:
                    raise JourneyFailed("/healthz did not answer 200")
                for pid in self.web_pids():
                    with contextlib.suppress(psutil.Error):
                        connections = psutil.Process(pid).net_connections(kind="tcp")
                        if any(c.status == "ESTABLISHED" and c.laddr.port == self.port for c in connections):
                            serving.add(pid)
        return serving

    def interrupt(self) -> None:
        """SIGINT to `manage.py run` only (not its process group), then wait for everything to exit."""
        assert self.process is not None
        os.kill(self.portal_pid, signal.SIGINT)
        try:
            self.result.returncode = self.process.wait(STOP_CEILING_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
            raise JourneyFailed(f"the portal did not stop within {STOP_CEILING_SECONDS} s of SIGINT") from None
        self.result.workers_left = [pid for pid in self.result.worker_pids if _alive(pid)]

    def kill(self) -> None:
        """Last resort on a failed run: everything that runs from this run's folders."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        ours = {os.getpid(), *(parent.pid for parent in psutil.Process().parents())}
        for process in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if process.pid not in ours and str(self.work_dir) in " ".join(process.info["cmdline"] or []):
                    process.kill()
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(30)

    def run_journey(self) -> RunResult:
        """Start, serve, journey, SIGINT; never raises: the error (if any) is in the result."""
        try:
            self.start()
            self.wait_until_serving()
            started = time.monotonic()
            journey(self.base_url, self.var_dir, self.result.steps)
            self.result.journey_seconds = round(time.monotonic() - started, 1)
            self.interrupt()
        except Exception as error:  # noqa: BLE001 - reported with the portal's output by the caller
            self.result.error = f"{type(error).__name__}: {error}"
            self.kill()
        self.result.output = self.output()
        return self.result


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


# ---- the journey --------------------------------------------------------------------------------------
def _csrf(client: httpx.Client, page: httpx.Response) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    return match.group(1) if match else client.cookies.get("csrftoken") or ""


def _client(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, follow_redirects=True, timeout=120)


def sign_in(base_url: str, username: str, password: str) -> httpx.Client:
    client = _client(base_url)
    page = client.get("/login/")
    response = client.post(
        "/login/", data={"username": username, "password": password, "csrfmiddlewaretoken": _csrf(client, page)}
    )
    if response.status_code != 200 or "/login/" in str(response.url) or "sessionid" not in client.cookies:
        raise JourneyFailed(f"sign-in of {username} failed ({response.status_code} at {response.url})")
    return client


def _poll(client: httpx.Client, url: str, done: re.Pattern[str], failed: re.Pattern[str], what: str) -> str:
    deadline = time.monotonic() + STEP_CEILING_SECONDS
    while time.monotonic() < deadline:
        text = client.get(url).text
        if failed.search(text):
            raise JourneyFailed(f"{what} failed: {text[:500]}")
        if done.search(text):
            return text
        time.sleep(0.5)
    raise JourneyFailed(f"{what} did not finish within {STEP_CEILING_SECONDS} s")


def upload(client: httpx.Client) -> int:
    listing = client.get("/knowledge/")
    bases = re.findall(r'href="/knowledge/(\d+)/"', listing.text)
    if not bases:
        raise JourneyFailed("no knowledge base to upload to")
    base = bases[0]
    response = client.post(
        f"/knowledge/{base}/upload",
        data={"csrfmiddlewaretoken": _csrf(client, listing)},
        files={"uploads": (DOCUMENT_NAME, DOCUMENT_TEXT.encode(), "text/markdown")},
    )
    if response.status_code != 200:
        raise JourneyFailed(f"upload answered {response.status_code}")
    match = re.search(r'href="/knowledge/documents/(\d+)/"[^<]*>[^<]*zephyrine', response.text, re.IGNORECASE)
    if not match:
        raise JourneyFailed("the uploaded document is not listed")
    document = int(match.group(1))
    _poll(
        client,
        f"/knowledge/documents/{document}/status",
        re.compile(r"status-ready"),
        re.compile(r"status-failed"),
        "ingestion of the uploaded document",
    )
    return document


def search(client: httpx.Client, document: int) -> None:
    page = client.get("/knowledge/search/", params={"q": SEARCH_WORD})
    if page.status_code != 200 or f"/knowledge/documents/{document}/" not in page.text:
        raise JourneyFailed(f"search for {SEARCH_WORD!r} did not find the uploaded document")


def ask(client: httpx.Client) -> str:
    from portal.routing.offline import OFFLINE_LABEL

    chat = client.get("/assistant/")
    profile = re.search(r'<option value="(\d+)"[^>]*>\s*Handbook helper', chat.text)
    if not profile:
        raise JourneyFailed("no assistant profile to ask")
    conversation = client.post(
        "/assistant/conversations/new/",
        data={"profile": profile.group(1), "csrfmiddlewaretoken": _csrf(client, chat)},
    )
    match = re.search(r"/assistant/conversations/(\d+)/", str(conversation.url))
    if not match:
        raise JourneyFailed(f"no conversation was opened ({conversation.url})")
    answered = client.post(
        f"/assistant/conversations/{match.group(1)}/ask/",
        data={"question": QUESTION, "csrfmiddlewaretoken": _csrf(client, conversation)},
    )
    if answered.status_code != 200 or OFFLINE_LABEL not in answered.text:
        raise JourneyFailed(f"no offline answer ({answered.status_code})")
    return answered.text


def export(client: httpx.Client) -> list[dict[str, Any]]:
    events = client.get("/audit/")
    requested = client.post(
        "/audit/exports/new/", data={"export_format": "jsonl", "csrfmiddlewaretoken": _csrf(client, events)}
    )
    match = re.search(r"/audit/exports/(\d+)/$", str(requested.url))
    if not match:
        raise JourneyFailed(f"no export was requested ({requested.status_code} at {requested.url})")
    export_id = match.group(1)
    _poll(
        client,
        f"/audit/exports/{export_id}/",
        re.compile(rf"/audit/exports/{export_id}/download/"),
        re.compile(r"The export failed"),
        "the background audit export",
    )
    download = client.get(f"/audit/exports/{export_id}/download/")
    if download.status_code != 200:
        raise JourneyFailed(f"export download answered {download.status_code}")
    return [json.loads(line) for line in download.text.splitlines() if line.strip()]


def journey(base_url: str, var_dir: Path, steps: list[str]) -> None:
    """Sign in, upload and wait until Ready, search, ask the offline model, export the trail as the auditor."""
    credentials = json.loads((var_dir / "demo_credentials.json").read_text(encoding="utf-8"))
    with contextlib.closing(sign_in(base_url, "admin", credentials["admin"])) as admin:
        steps.append("signed in")
        document = upload(admin)
        steps.append("uploaded, ready")
        search(admin, document)
        steps.append("searched")
        answer = ask(admin)
        steps.append("asked" + (" (answer quotes the document)" if "06:40" in answer else ""))
    with contextlib.closing(sign_in(base_url, "auditor", credentials["auditor"])) as auditor:
        rows = export(auditor)
    actions = {row["action"] for row in rows}
    wanted = {"knowledge.document_uploaded", "knowledge.searched", "assistant.answer_stored"}
    if not wanted <= actions:
        raise JourneyFailed(f"the export lacks {sorted(wanted - actions)}")
    steps.append(f"exported {len(rows)} events")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--strace", action="store_true")
    parser.add_argument("--report", type=Path, required=True)
    args = parser.parse_args(argv)
    shutil.rmtree(args.work_dir / "var", ignore_errors=True)
    portal = Portal(args.work_dir, trace=args.strace)
    result = portal.run_journey()
    args.report.write_text(json.dumps(asdict(result), indent=2), encoding="utf-8")
    return 0 if not result.error else 1


if __name__ == "__main__":
    sys.exit(main())
