"""Least privilege for the portal's database role, so that the audit table stays append-only against it.

The portal connects as an ordinary role (`portal` on the embedded server). It owns its tables, so
migrations, VACUUM, ANALYZE and index builds work as before, with these exceptions, all enforced by
PostgreSQL's own privilege checks rather than by code that could be bypassed:

* The audit table and its two functions belong to `portal_audit_owner`, a role nobody logs in as. The
  portal role may SELECT and INSERT, nothing else: `ALTER TABLE ... DISABLE TRIGGER`, `DROP`, `TRUNCATE`,
  `UPDATE`, `DELETE`, `ALTER ... OWNER` and `CREATE OR REPLACE FUNCTION` of the trigger function or of
  `audit_chain_lock_head` all fail with "must be owner" or "permission denied".
* The database and its `public` schema belong to a superuser. The portal may create tables in `public`
  but cannot drop the schema (which would take the audit table with it) nor create schemas that would
  come before `public` on the search path (`"$user"`) and shadow the audit table for later sessions.
* It is not a superuser and holds no SET privilege on `session_replication_role`, the switch that turns
  triggers off for a session.

Why not let the portal role own the audit table and stop `ALTER TABLE ... DISABLE TRIGGER` with an event
trigger instead? An owner may also replace the trigger function, add row-level security policies that
hide rows from verifiers, rename the table, make it inherit, or drop the schema; an event trigger would
have to recognise every such command (PL/pgSQL cannot even see which ALTER TABLE subcommand ran), while
"not the owner" rules them all out at once. The price: a future migration that changes the audit table
itself needs the owner, see `release_statements()`.

Only a superuser can set this up or undo it. The embedded bootstrap (portal/embedded.py) does it at every
start, `manage.py db_harden` does it on a server. The module needs only a DB-API cursor (psycopg's or
Django's), so the bootstrap can use it before Django is configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PORTAL_ROLE = "portal"
AUDIT_OWNER_ROLE = "portal_audit_owner"
SCHEMA = "public"
AUDIT_TABLE = "audit_auditevent"
AUDIT_FUNCTIONS = ("audit_event_reject_change", "audit_chain_lock_head")
AUDIT_TRIGGERS = ("audit_event_no_update_delete", "audit_event_no_truncate")
AUDIT_TABLE_PRIVILEGES = ("SELECT", "INSERT")
REFUSED_TABLE_PRIVILEGES = ("UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
# Arbitrary constant: serialises processes that harden the same database at the same moment.
HARDEN_LOCK_KEY = 0x4155_4449_5448  # "AUDITH"
ROLE_ATTRIBUTES = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"

ERROR_ROLE_MISSING = (
    "The role {role!r} does not exist. Create it first, with a password of your choice, as a superuser: "
    "CREATE ROLE {quoted} LOGIN PASSWORD '...';"
)
ERROR_SELF = "Refusing to harden {role!r}: it is this connection's role or the audit owner, and would lose its rights."

PROBLEM_SUPERUSER = "the role {role!r} is a superuser: it can switch the audit table's triggers off"
PROBLEM_ROLE_ATTRIBUTE = "the role {role!r} has {attribute}"
PROBLEM_PARAMETER = "the role {role!r} may SET session_replication_role, which switches triggers off"
PROBLEM_TABLE_OWNER = (
    "the role {role!r} owns (or may act as the owner {owner!r} of) the audit table: it can disable its "
    "triggers, drop or truncate it"
)
PROBLEM_TABLE_PRIVILEGE = "the role {role!r} holds {privilege} on the audit table"
PROBLEM_TABLE_MISSING_PRIVILEGE = "the role {role!r} lacks {privilege} on the audit table (the portal needs it)"
PROBLEM_FUNCTION_OWNER = "the role {role!r} owns (or may act as the owner of) {function}: it can replace it"
PROBLEM_TRIGGER_MISSING = "the append-only trigger {trigger} is missing from the audit table"
PROBLEM_TRIGGER_DISABLED = "the append-only trigger {trigger} is disabled"
PROBLEM_DATABASE_OWNER = (
    "the role {role!r} owns (or may act as the owner of) the database or its schema {schema}: it can drop "
    "the schema and the audit table with it"
)
PROBLEM_CREATE_SCHEMA = (
    "the role {role!r} may create schemas in this database: one named like the role comes before {schema} "
    "on the search path and can shadow the audit table"
)
PROBLEM_OTHER_SCHEMA = (
    "the role {role!r} may create objects in schema {other!r}, which can shadow the audit table if it comes "
    "first on a search path"
)


@dataclass(frozen=True)
class Statement:
    sql: str
    why: str


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _audit_table() -> str:
    return f"{quote(SCHEMA)}.{quote(AUDIT_TABLE)}"


def _one(cursor: Any, sql: str, params: list[Any] | None = None) -> Any:
    cursor.execute(sql, params or [])
    row = cursor.fetchone()
    return row[0] if row is not None else None


def _server_version(cursor: Any) -> int:
    return int(_one(cursor, "SELECT current_setting('server_version_num')::int"))


def _role(cursor: Any, role: str) -> tuple[Any, ...] | None:
    cursor.execute(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin"
        " FROM pg_roles WHERE rolname = %s",
        [role],
    )
    row = cursor.fetchone()
    return tuple(row) if row is not None else None


def audit_table_exists(cursor: Any) -> bool:
    return _one(cursor, "SELECT to_regclass(%s) IS NOT NULL", [f"{SCHEMA}.{AUDIT_TABLE}"]) is True


# ---- the roles (cluster-wide: run in any database) ----------------------------------------------------
def role_statements(cursor: Any, *, role: str = PORTAL_ROLE, audit_owner: str = AUDIT_OWNER_ROLE,
                    create_role: bool = False) -> list[Statement]:  # fmt: skip
    """Create or correct the portal role and the audit owner role."""
    statements = []
    found = _role(cursor, role)
    if found is None:
        if not create_role:
            raise LookupError(ERROR_ROLE_MISSING.format(role=role, quoted=quote(role)))
        statements.append(
            Statement(
                f"CREATE ROLE {quote(role)} LOGIN {ROLE_ATTRIBUTES}",
                "the role the portal connects as; no password: the embedded server trusts its Unix socket",
            )
        )
    elif any(found[:5]):
        statements.append(Statement(f"ALTER ROLE {quote(role)} {ROLE_ATTRIBUTES}", "the portal needs none of these"))
    owner = _role(cursor, audit_owner)
    if owner is None:
        statements.append(
            Statement(
                f"CREATE ROLE {quote(audit_owner)} NOLOGIN {ROLE_ATTRIBUTES}",
                "owns the audit table and its functions; nobody logs in as it",
            )
        )
    elif any(owner):
        statements.append(
            Statement(f"ALTER ROLE {quote(audit_owner)} NOLOGIN {ROLE_ATTRIBUTES}", "nobody may log in as the owner")
        )
    if found is not None and owner is not None and _one(cursor, "SELECT pg_has_role(%s, %s, 'MEMBER')",
                                                        [role, audit_owner]):  # fmt: skip
        statements.append(
            Statement(f"REVOKE {quote(audit_owner)} FROM {quote(role)}", "a member could act as the audit owner")
        )
    if (
        found is not None
        and _server_version(cursor) >= 150000
        and _one(cursor, "SELECT has_parameter_privilege(%s, 'session_replication_role', 'SET')", [role])
    ):
        statements.append(
            Statement(
                f"REVOKE SET ON PARAMETER session_replication_role FROM PUBLIC, {quote(role)}",
                "session_replication_role = replica switches the append-only triggers off",
            )
        )
    return statements


# ---- the database (run connected to it) ------------------------------------------------------------------
_RELATIONS_SQL = """
SELECT c.relkind, c.relname, pg_get_userbyid(c.relowner)
FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  AND NOT EXISTS (SELECT 1 FROM pg_depend AS d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i'))))
ORDER BY c.relname
"""
_ROUTINES_SQL = """
SELECT p.proname, p.oid::regprocedure::text, pg_get_userbyid(p.proowner)
FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
WHERE n.nspname = %s
  AND NOT EXISTS (SELECT 1 FROM pg_depend AS d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                  AND d.deptype = 'e')
ORDER BY 2
"""
_KIND = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE", "f": "FOREIGN TABLE"}


def database_statements(cursor: Any, *, role: str = PORTAL_ROLE,
                        audit_owner: str = AUDIT_OWNER_ROLE) -> list[Statement]:  # fmt: skip
    """What this database needs so that `role` owns its tables but cannot touch the audit trail.

    Every object of the schema that is not part of an extension goes to `role`, except the audit table
    and its functions, which go to `audit_owner`: the schema belongs to the portal (a dedicated database).
    """
    statements = _extension_statements(cursor)
    statements += _database_owner_statements(cursor, role)
    cursor.execute(_RELATIONS_SQL, [SCHEMA])
    for kind, name, owner in cursor.fetchall():
        protected = name == AUDIT_TABLE and kind in ("r", "p")
        wanted = audit_owner if protected else role
        if owner != wanted:
            why = "the audit table belongs to its owner role" if protected else "the portal owns its tables"
            statements.append(Statement(f"ALTER {_KIND[kind]} {quote(SCHEMA)}.{quote(name)} OWNER TO {quote(wanted)}",
                                        why))  # fmt: skip
    cursor.execute(_ROUTINES_SQL, [SCHEMA])
    for name, signature, owner in cursor.fetchall():
        protected = name in AUDIT_FUNCTIONS
        wanted = audit_owner if protected else role
        if owner != wanted:
            why = "its owner could replace it with one that does nothing" if protected else "the portal owns it"
            statements.append(Statement(f"ALTER ROUTINE {quote(SCHEMA)}.{signature} OWNER TO {quote(wanted)}", why))
    if audit_table_exists(cursor):
        statements += _audit_table_statements(cursor, role)
    return statements


def _extension_statements(cursor: Any) -> list[Statement]:
    installed = _one(cursor, "SELECT 1 FROM pg_extension WHERE extname = 'vector'")
    available = _one(cursor, "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
    if installed or not available:  # without pgvector the knowledge migration explains what to install
        return []
    return [Statement("CREATE EXTENSION IF NOT EXISTS vector", "pgvector is not a trusted extension: only a "
                      "superuser may create it")]  # fmt: skip


def _database_owner_statements(cursor: Any, role: str) -> list[Statement]:
    statements = []
    database = quote(_one(cursor, "SELECT current_database()"))
    if _one(cursor, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()") == role:
        statements.append(
            Statement(f"ALTER DATABASE {database} OWNER TO CURRENT_USER", "the database owner can drop its schemas")
        )
    if _one(cursor, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s", [SCHEMA]) == role:
        why = "the schema owner can drop it with the audit table inside"
        statements.append(Statement(f"ALTER SCHEMA {quote(SCHEMA)} OWNER TO pg_database_owner", why))
    if _one(cursor, "SELECT has_database_privilege(%s, current_database(), 'CREATE')", [role]):
        why = "a schema named like the role would shadow the audit table on the search path"
        statements.append(Statement(f"REVOKE CREATE ON DATABASE {database} FROM PUBLIC, {quote(role)}", why))
    if not _one(cursor, "SELECT has_schema_privilege(%s, %s, 'CREATE') AND has_schema_privilege(%s, %s, 'USAGE')",
                [role, SCHEMA, role, SCHEMA]):  # fmt: skip
        statements.append(
            Statement(f"GRANT USAGE, CREATE ON SCHEMA {quote(SCHEMA)} TO {quote(role)}", "migrations create tables")
        )
    return statements


def _audit_table_statements(cursor: Any, role: str) -> list[Statement]:
    statements = []
    table = _audit_table()
    held = _table_privileges(cursor, role)
    if any(held[name] for name in REFUSED_TABLE_PRIVILEGES) or not all(held[name] for name in AUDIT_TABLE_PRIVILEGES):
        statements.append(Statement(f"REVOKE ALL ON TABLE {table} FROM PUBLIC, {quote(role)}",
                                    "the trail is append-only"))  # fmt: skip
        statements.append(Statement(f"GRANT {', '.join(AUDIT_TABLE_PRIVILEGES)} ON TABLE {table} TO {quote(role)}",
                                    "the portal reads and appends events"))  # fmt: skip
    for trigger, enabled in _triggers(cursor).items():
        if enabled not in ("O", "A"):
            why = "someone with superuser rights switched the append-only trigger off"
            statements.append(Statement(f"ALTER TABLE {table} ENABLE TRIGGER {quote(trigger)}", why))
    return statements


def _table_privileges(cursor: Any, role: str) -> dict[str, bool]:
    table = f"{SCHEMA}.{AUDIT_TABLE}"
    names = AUDIT_TABLE_PRIVILEGES + REFUSED_TABLE_PRIVILEGES
    cursor.execute(
        "SELECT "
        + ", ".join("has_table_privilege(%s, %s, %s)" for _ in names)
        + ", has_any_column_privilege(%s, %s, 'UPDATE')",
        [value for name in names for value in (role, table, name)] + [role, table],
    )
    row = cursor.fetchone()
    held = dict(zip(names, row, strict=False))
    held["UPDATE"] = held["UPDATE"] or row[-1]  # a column-level UPDATE grant is enough to rewrite events
    return held


def _triggers(cursor: Any) -> dict[str, str]:
    cursor.execute(
        "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal",
        [f"{SCHEMA}.{AUDIT_TABLE}"],
    )
    found = {str(name): str(enabled) for name, enabled in cursor.fetchall()}
    return {name: found[name] for name in AUDIT_TRIGGERS if name in found}


def release_statements(cursor: Any, *, role: str = PORTAL_ROLE) -> list[Statement]:
    """Give the audit table and its functions back to `role` so that a migration can change them.

    For the embedded server only, around a `migrate` whose plan includes audit migrations; the
    hardening after the migration (and at the next start, if the migration failed) takes them back.
    """
    if not audit_table_exists(cursor):
        return []
    statements = [Statement(f"ALTER TABLE {_audit_table()} OWNER TO {quote(role)}", "an audit migration runs")]
    cursor.execute(_ROUTINES_SQL, [SCHEMA])
    for name, signature, _owner in cursor.fetchall():
        if name in AUDIT_FUNCTIONS:
            statements.append(Statement(f"ALTER ROUTINE {quote(SCHEMA)}.{signature} OWNER TO {quote(role)}",
                                        "an audit migration runs"))  # fmt: skip
    return statements


def begin(cursor: Any) -> None:
    """Start hardening in the caller's transaction: before looking at the catalogs, so that two processes that
    start at the same moment do not both decide to create the same role."""
    cursor.execute("SET LOCAL lock_timeout = '60s'")  # ALTER ... OWNER waits for running queries on the table
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [HARDEN_LOCK_KEY])


def execute(cursor: Any, statements: list[Statement]) -> None:
    """Run the statements in the caller's transaction, after begin()."""
    for statement in statements:
        cursor.execute(statement.sql)


# ---- what is wrong, as seen by a role (the system check, db_harden's report, the tests) -------------------
def problems(cursor: Any, *, role: str | None = None) -> list[str]:
    """Every way `role` (default: the connected role) could change or remove audit events."""
    role = role or str(_one(cursor, "SELECT current_user"))
    found = _role(cursor, role)
    if found is None:
        return [ERROR_ROLE_MISSING.format(role=role, quoted=quote(role))]
    if found[0]:
        return [PROBLEM_SUPERUSER.format(role=role)]  # everything below is moot
    issues = []
    for flag, attribute in zip(found[1:5], ("CREATEROLE", "CREATEDB", "REPLICATION", "BYPASSRLS"), strict=True):
        if flag and attribute != "CREATEDB":  # CREATEDB makes new databases only, none of this one
            issues.append(PROBLEM_ROLE_ATTRIBUTE.format(role=role, attribute=attribute))
    if _server_version(cursor) >= 150000 and _one(
        cursor, "SELECT has_parameter_privilege(%s, 'session_replication_role', 'SET')", [role]
    ):
        issues.append(PROBLEM_PARAMETER.format(role=role))
    if _one(cursor, "SELECT pg_has_role(%s, datdba, 'MEMBER') FROM pg_database WHERE datname = current_database()",
            [role]) or _one(cursor, "SELECT pg_has_role(%s, nspowner, 'MEMBER') FROM pg_namespace WHERE nspname = %s",
                            [role, SCHEMA]):  # fmt: skip
        issues.append(PROBLEM_DATABASE_OWNER.format(role=role, schema=SCHEMA))
    if _one(cursor, "SELECT has_database_privilege(%s, current_database(), 'CREATE')", [role]):
        issues.append(PROBLEM_CREATE_SCHEMA.format(role=role, schema=SCHEMA))
    cursor.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname <> %s AND nspname NOT LIKE 'pg\\_%%'"
        " AND nspname <> 'information_schema' AND has_schema_privilege(%s, oid, 'CREATE') ORDER BY 1",
        [SCHEMA, role],
    )
    issues += [PROBLEM_OTHER_SCHEMA.format(role=role, other=name) for (name,) in cursor.fetchall()]
    if audit_table_exists(cursor):
        issues += _audit_table_problems(cursor, role)
    return issues


def _audit_table_problems(cursor: Any, role: str) -> list[str]:
    issues = []
    owner = _one(cursor, "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass(%s)",
                 [f"{SCHEMA}.{AUDIT_TABLE}"])  # fmt: skip
    if _one(cursor, "SELECT pg_has_role(%s, %s, 'MEMBER')", [role, owner]):
        issues.append(PROBLEM_TABLE_OWNER.format(role=role, owner=owner))
    held = _table_privileges(cursor, role)
    issues += [PROBLEM_TABLE_PRIVILEGE.format(role=role, privilege=name) for name in REFUSED_TABLE_PRIVILEGES
               if held[name]]  # fmt: skip
    issues += [PROBLEM_TABLE_MISSING_PRIVILEGE.format(role=role, privilege=name) for name in AUDIT_TABLE_PRIVILEGES
               if not held[name]]  # fmt: skip
    cursor.execute(_ROUTINES_SQL, [SCHEMA])
    for name, signature, function_owner in cursor.fetchall():
        if name in AUDIT_FUNCTIONS and _one(cursor, "SELECT pg_has_role(%s, %s, 'MEMBER')", [role, function_owner]):
            issues.append(PROBLEM_FUNCTION_OWNER.format(role=role, function=signature))
    triggers = _triggers(cursor)
    for trigger in AUDIT_TRIGGERS:
        if trigger not in triggers:
            issues.append(PROBLEM_TRIGGER_MISSING.format(trigger=trigger))
        elif triggers[trigger] not in ("O", "A"):
            issues.append(PROBLEM_TRIGGER_DISABLED.format(trigger=trigger))
    return issues
