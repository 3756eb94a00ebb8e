"""`manage.py db_harden`: give the portal's database role least privilege, and the audit table its own owner.

Run it with a superuser DATABASE_URL (the portal itself never holds those credentials), once after the first
`migrate` and again whenever the system check (audit/checks.py) warns; it is idempotent and prints what it did.
`--sql` prints the statements instead, for a DBA to review or run. On the embedded server the bootstrap does
all of this at every start; the command then uses the embedded superuser and normally finds nothing to do.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

from audit import hardening

ERROR_NOT_SUPERUSER = (
    "Connected as {user!r}, which is not a superuser: run db_harden with a superuser DATABASE_URL, or add --sql "
    "to print the statements for someone who is."
)
WARNING_RELEASED = (
    "The audit table and its functions now belong to {role!r}, which can switch its triggers off: run the "
    "migration now, then `db_harden` again at once."
)
NOTE_NO_AUDIT_TABLE = (
    "The audit table does not exist yet: run `manage.py migrate` as {role!r}, then db_harden again to protect it."
)


class Command(BaseCommand):
    help = "Set up the portal's database role with least privilege and protect the audit table (needs a superuser)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--role", default=hardening.PORTAL_ROLE, help="the role the portal connects as "
                            "(default %(default)s; create it first, with a password)")  # fmt: skip
        parser.add_argument("--audit-owner", default=hardening.AUDIT_OWNER_ROLE,
                            help="owner of the audit table, created NOLOGIN (default %(default)s)")  # fmt: skip
        parser.add_argument("--sql", action="store_true", help="print the SQL instead of running it")
        parser.add_argument("--release", action="store_true", help="hand the audit table back to --role for a "
                            "migration that changes it; run db_harden again right after that migration")  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        role, audit_owner = options["role"], options["audit_owner"]
        with self._superuser_cursor() as cursor:
            hardening.begin(cursor)
            user, superuser = self._whoami(cursor)
            if not options["sql"]:
                if not superuser:
                    raise CommandError(ERROR_NOT_SUPERUSER.format(user=user))
                if role in (user, audit_owner):
                    raise CommandError(hardening.ERROR_SELF.format(role=role))
            if options["release"]:
                statements = hardening.release_statements(cursor, role=role)
            else:
                try:
                    statements = hardening.role_statements(cursor, role=role, audit_owner=audit_owner)
                except LookupError as error:
                    raise CommandError(str(error)) from error
                statements += hardening.database_statements(cursor, role=role, audit_owner=audit_owner)
            if options["sql"]:
                self._print_sql(statements)
                return
            hardening.execute(cursor, statements)
            remaining = hardening.problems(cursor, role=role)
            table_exists = hardening.audit_table_exists(cursor)
        for statement in statements:
            self.stdout.write(f"done: {statement.sql}  -- {statement.why}")
        if options["release"]:
            self.stderr.write(WARNING_RELEASED.format(role=role))
            return
        if not statements:
            self.stdout.write(f"Nothing to do: {role!r} already has least privilege here.")
        if not table_exists:
            self.stdout.write(NOTE_NO_AUDIT_TABLE.format(role=role))
        if remaining:
            for problem in remaining:
                self.stderr.write(f"still wrong: {problem}")
            raise CommandError("Some problems need a person: see above.")
        self.stdout.write(f"The role {role!r} cannot change or remove audit events.")

    def _superuser_cursor(self) -> AbstractContextManager[Any]:
        if settings.DATABASE_SUPERUSER:  # the embedded server: use its superuser, not the portal's role
            from audit.protection import superuser_connection

            return _PsycopgTransaction(superuser_connection())
        return _DjangoTransaction()

    def _whoami(self, cursor: Any) -> tuple[str, bool]:
        cursor.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
        user, superuser = cursor.fetchone()
        return str(user), bool(superuser)

    def _print_sql(self, statements: list[hardening.Statement]) -> None:
        if not statements:
            self.stdout.write("-- nothing to do")
        self.stdout.write("BEGIN;")
        for statement in statements:
            self.stdout.write(f"-- {statement.why}\n{statement.sql};")
        self.stdout.write("COMMIT;")


class _DjangoTransaction:
    def __enter__(self) -> Any:
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self._cursor = connection.cursor()
        return self._cursor

    def __exit__(self, *exc: Any) -> None:
        self._cursor.close()
        self._atomic.__exit__(*exc)


class _PsycopgTransaction:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def __enter__(self) -> Any:
        self._cursor = self._conn.cursor()
        return self._cursor

    def __exit__(self, *exc: Any) -> None:
        self._cursor.close()
        try:
            if exc[0] is None:
                self._conn.commit()
            else:
                self._conn.rollback()
        finally:
            self._conn.close()
