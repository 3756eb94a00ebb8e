"""The test harness: embedded PostgreSQL, a network that ends at the loopback, the cast, the fakes."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.netguard import guard

guard.install()  # before any test module imports a library that could phone home

pytest_plugins = [
    "tests.workers",  # real Celery worker processes for the real tasks
    "tests.oidc_provider.fixture",  # a real OpenID provider in a second process (single sign-on)
]

REPO_ROOT = Path(__file__).resolve().parent.parent
NETGUARD_DIR = Path(__file__).resolve().parent / "netguard"
SHARED_DATA = (REPO_ROOT.parent / "shared" / "data").resolve()


def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    # Tests render templates without running collectstatic first.
    from django.test.signals import setting_changed

    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # Something may already have looked a storage up while Django started: drop those cached instances.
    setting_changed.send(sender=type(settings), setting="STORAGES", value=settings.STORAGES, enter=True)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only
    from tests import database

    database.install()  # the tests connect as the portal role; the harness's superuser work: tests/database.py
    # Checkpoints every N events would queue Celery tasks into the broker folder during any test that writes
    # enough events; the tests of that feature turn it on.
    settings.AUDIT_CHECKPOINT_EVERY_EVENTS = 0
    # no listening connection per test process: it would keep the test database from being dropped; the
    # listener's own tests start one and stop it (tests/governance/test_known_entity_changes.py)
    settings.GOVERNANCE_KNOWN_ENTITIES_LISTEN = False


@pytest.fixture(autouse=True)
def _fresh_known_entities() -> Iterator[None]:
    """Every test starts with the known-entity dictionary rebuilt from its own database: the cached index
    (GOVERNANCE_KNOWN_ENTITIES_TTL) would otherwise carry one test's customers into the next test's lookups."""
    from governance import known_entities

    known_entities.invalidate()
    yield
    known_entities.invalidate()


@pytest.fixture(autouse=True)
def _fresh_parameters() -> Iterator[None]:
    """The Settings screen's values are cached per process; each test reads its own database's version."""
    from portal.core.parameters import parameters_forget

    parameters_forget()
    yield
    parameters_forget()


@pytest.fixture
def knowledge_storage(settings: Any, tmp_path: Path) -> Path:
    """Uploaded originals go to this test's temporary folder, not var/ (autouse in the apps that upload)."""
    location = tmp_path / "knowledge-files"
    settings.STORAGES = {
        **settings.STORAGES,
        "knowledge": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(location)}},
    }
    return location


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    """Run Celery tasks in the caller's process (the worker's job, done synchronously)."""
    from portal.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for Python subprocesses: same settings, network guard installed."""
    env = dict(os.environ)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set for the browser tests' own process only
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(NETGUARD_DIR), str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    return env


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"external evaluation data not found at {SHARED_DATA} (only present beside the project checkout)")
    return SHARED_DATA


# ---- the cast: one person per role plus an outsider -------------------------------------------------
@pytest.fixture
def alice(db: None) -> Any:
    """Administrator."""
    from tests.accounts.factories import UserFactory

    return UserFactory.create(username="alice", roles=["Administrator"])


@pytest.fixture
def olivia(db: None) -> Any:
    """Governance officer."""
    from tests.accounts.factories import UserFactory

    return UserFactory.create(username="olivia", roles=["Governance officer"])


@pytest.fixture
def audrey(db: None) -> Any:
    """Auditor."""
    from tests.accounts.factories import UserFactory

    return UserFactory.create(username="audrey", roles=["Auditor"])


@pytest.fixture
def sam(db: None) -> Any:
    """Staff."""
    from tests.accounts.factories import UserFactory

    return UserFactory.create(username="sam", roles=["Staff"])


@pytest.fixture
def oscar(db: None) -> Any:
    """Outsider: can sign in, has no role."""
    from tests.accounts.factories import UserFactory

    return UserFactory.create(username="oscar", roles=[])


# ---- the fake provider ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def _fake_provider_server() -> Iterator[Any]:
    from tests.fakes.provider import FakeProvider

    server = FakeProvider().start()
    yield server
    server.stop()


@pytest.fixture
def fake_provider(_fake_provider_server: Any) -> Iterator[Any]:
    _fake_provider_server.reset()
    yield _fake_provider_server
    _fake_provider_server.reset()


# ---- browser ----------------------------------------------------------------------------------------
def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None
