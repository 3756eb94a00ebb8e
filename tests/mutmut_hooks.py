"""A pytest plugin for `make mutation` only (loaded with `-p tests.mutmut_hooks`).

mutmut runs the tests once in its own process, then forks a child per mutant from it. A database
connection (or a psycopg pool with its threads) left open by that run would be shared by every child, and
two children talking over one socket corrupt each other's results. Closing them when a session ends
makes each child open its own.
"""

from __future__ import annotations

from typing import Any


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

    test_utils.setup_databases = setup_once  # type: ignore[assignment]

    # A killed mutant only needs the first failing example, not the smallest one: shrinking a failure of a
    # database-backed property takes minutes, for every mutant it kills.
    from hypothesis import Phase, settings

    settings.register_profile("mutation", phases=(Phase.explicit, Phase.reuse, Phase.generate))
    settings.load_profile("mutation")
