"""`manage.py run`: the one command that brings the whole portal up on this machine.

Migrates, collects static files, creates the demo organisation on first start, starts a Celery worker
and serves the portal with uvicorn (ASGI, so streaming answers do not hold a thread each) until Ctrl-C.

The web server runs one process per core by default (PORTAL_WEB_WORKERS, `--workers`): uvicorn's supervisor
binds the socket once and spawns the workers, each of which imports the portal afresh (spawn, not fork), so
each has its own database connection pool and attaches to the same embedded PostgreSQL, which this process
started and prepared. The one Celery worker and the embedded broker's folders are shared by all of them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

WORKER_STOP_SECONDS = 30
# uvicorn's supervisor pings each web process and replaces one that does not answer within this (its default,
# 5 s, kills processes that are only busy: importing torch and loading the embedding model on a loaded machine).
WEB_HEALTHCHECK_SECONDS = 120


class Command(BaseCommand):
    help = "Start the portal (web server and Celery worker) on the configured database."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default=settings.PORTAL_BIND, help="host:port (default %(default)s)")
        parser.add_argument("--no-worker", action="store_true", help="do not start a Celery worker")
        parser.add_argument(
            "--workers",
            type=int,
            default=settings.PORTAL_WEB_WORKERS,
            help="web server processes (default PORTAL_WEB_WORKERS; 0: one per core)",
        )
        parser.add_argument("--dev", action="store_true", help="development mode (DEBUG on; set by manage.py)")

    def handle(self, *args: Any, **options: Any) -> None:
        # Ctrl-C and SIGTERM both mean "stop", during the start too, and also when the shell started us with
        # SIGINT ignored: each raises KeyboardInterrupt. While it serves, uvicorn puts its own handlers in,
        # shuts down, then re-raises the signal through these.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            self._start_and_serve(options)
        except KeyboardInterrupt:
            pass  # the worker is stopped by now; the embedded database stops when this process exits
        finally:
            # Nothing may interrupt the embedded database's shutdown, which runs as this process exits.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        self.stdout.write("Portal stopped.")

    def _start_and_serve(self, options: dict[str, Any]) -> None:
        host, _, port = options["bind"].rpartition(":")
        self.stdout.write("Preparing the database…")
        call_command("migrate", interactive=False, verbosity=0)
        if not settings.DEBUG:
            call_command("collectstatic", interactive=False, verbosity=0)
        credentials: dict[str, str] = {}
        if settings.PORTAL_DEMO:
            from portal.core.demo import demo_organisation_ensure

            credentials = demo_organisation_ensure()

        worker = None if options["no_worker"] else self._start_worker()
        try:
            workers = web_workers(options["workers"])
            self._print_banner(host, int(port), credentials, workers)
            self._serve(host, int(port), workers)
        finally:
            if worker is not None:
                self._stop_worker(worker)

    def _start_worker(self) -> subprocess.Popen[bytes]:
        command = [
            sys.executable, "-m", "celery", "-A", "portal", "worker",
            "--loglevel", "INFO", "--hostname", f"portal@{os.uname().nodename}",
            "--concurrency", str(settings.CELERY_WORKER_CONCURRENCY),
        ]  # fmt: skip
        if settings.CELERY_BEAT_SCHEDULE:
            # One host, one worker: run the periodic tasks (audit checkpoints, ...) inside it with -B.
            # Production runs exactly one `celery -A portal beat` instead (see README).
            command += ["--beat", "--schedule", str(settings.VAR_DIR / "celerybeat-schedule")]
        return subprocess.Popen(command, cwd=settings.BASE_DIR)

    def _stop_worker(self, worker: subprocess.Popen[bytes]) -> None:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)  # warm shutdown: finish the running task
        try:
            worker.wait(WORKER_STOP_SECONDS)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):  # too slow, or Ctrl-C again: stop it now
            worker.kill()
            worker.wait()

    def _print_banner(self, host: str, port: int, credentials: dict[str, str], workers: int) -> None:
        database = "external (DATABASE_URL)" if settings.DATABASE_URL else f"embedded, data in {settings.VAR_DIR}"
        broker = "Redis" if settings.CELERY_BROKER_URL.startswith("redis") else "embedded (filesystem, var/broker)"
        lines = [
            "",
            "Hybrid AI portal is running",
            f"  open      http://{host}:{port}/",
            f"  database  {database}",
            f"  broker    {broker}",
            f"  web       {workers} process{'es' if workers > 1 else ''} (PORTAL_WEB_WORKERS)",
        ]
        if credentials:
            lines.append("  sign in with (demo organisation; passwords kept in var/demo_credentials.json):")
            lines += [f"    {name:<8} {password}" for name, password in credentials.items()]
        lines += ["  stop with Ctrl-C", ""]
        self.stdout.write("\n".join(lines))

    def _serve(self, host: str, port: int, workers: int) -> None:
        import uvicorn

        if workers > 1 and not settings.DATABASE_URL:
            from portal.embedded import mark_prepared

            mark_prepared(settings.PORTAL_PGDATA_DIR, settings.DATABASES["default"]["NAME"])
        config = uvicorn.Config(
            "portal.asgi:application",
            host=host,
            port=port,
            lifespan="off",
            log_level="info",
            proxy_headers=False,
            server_header=False,
            workers=workers,
            timeout_worker_healthcheck=WEB_HEALTHCHECK_SECONDS,
        )
        if workers == 1:
            uvicorn.Server(config).run()
            return
        from uvicorn.supervisors import Multiprocess

        # SIGINT or SIGTERM to this process: the supervisor sends SIGTERM to each worker (which finishes its
        # open responses, as a single server does) and returns once all have exited.
        Multiprocess(config, sockets=[config.bind_socket()]).run()


def web_workers(requested: int) -> int:
    """The number of web processes: as asked, or one per core this process may run on."""
    if requested > 0:
        return requested
    return max(1, len(os.sched_getaffinity(0)))
