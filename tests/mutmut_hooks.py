"""A pytest plugin for `make mutation` only (loaded with `-p tests.mutmut_hooks`).

mutmut runs the tests once in its own process, then forks a child per mutant from it. A database
connection (or a psycopg pool with its threads) left open by that run would be shared by every child, and
two children talking over one socket corrupt each other's results. Closing them when a session ends
makes each child open its own.
"""

from __future__ import annotations

from typing import Any

import pytest


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        connection.close()
        close_pool = getattr(connection, "close_pool", None)
        if close_pool is not None:
            close_pool()


_patched = False


def pytest_configure(config: Any) -> None:
    global _patched
    if _patched:
        return
    _patched = True
    # The test database is set up by the first run in mutmut's process (with --reuse-db); each child forked
    # from it inherits the settings pointing at it, so its own setup (migrate and post_migrate, seconds per
    # mutant) is skipped.
    import django.test.utils as test_utils

    setup_databases = test_utils.setup_databases
    done: list[Any] = []

    def setup_once(*args: Any, **kwargs: Any) -> Any:
        if not done:
            done.append(setup_databases(*args, **kwargs))
        return done[0]

    test_utils.setup_databases = setup_once

    # A killed mutant only needs the first failing example, not the smallest one: shrinking a failure of a
    # database-backed property takes minutes, for every mutant it kills.
    from hypothesis import Phase, settings

    settings.register_profile("mutation", phases=(Phase.explicit, Phase.reuse, Phase.generate))
    settings.load_profile("mutation")


@pytest.fixture(scope="session", autouse=True)
def _no_leftovers_from_a_killed_child(django_db_setup: None, django_db_blocker: Any) -> None:
    """A child killed in the middle of a transactional test (a timeout) leaves its committed rows behind, and
    every later child would see them: a stray document fails the permission tests whatever the mutant. Tests
    leave none of these rows behind when they finish, so any of them at the start of a session are leftovers:
    flush them (post_migrate puts the roles and the default policy back)."""
    from django.core.management import call_command
    from django.db import connection

    tables = (
        "auth_user",
        "knowledge_knowledgebase",
        "knowledge_document",
        "governance_conversationvault",
        "audit_auditevent",
    )
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(f"(SELECT 1 FROM {table} LIMIT 1)" for table in tables))  # noqa: S608
        leftovers = cursor.fetchone() is not None
    if leftovers:
        with django_db_blocker.unblock():
            call_command("flush", interactive=False, verbosity=0)
