from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.router import fresh_router


@pytest.fixture(autouse=True)
def _static_files_without_manifest(settings: Any) -> None:
    """Work around the storages handler being configured before tests/conftest.py swaps the static storage
    (it then needs a collectstatic manifest listing every new file). Setting it through the `settings`
    fixture sends setting_changed, which resets the handler."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _fresh_router(settings: Any) -> Iterator[None]:
    with fresh_router(settings):
        yield


@pytest.fixture
def fake_model(db: None, fake_provider: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An economy-tier catalog model answering from the fake provider server (memory learning's tier)."""
    from tests.routing.factories import CatalogModelFactory

    monkeypatch.setenv("FAKE_PROVIDER_KEY", "sk-fake-memory-key-0123456789")
    return CatalogModelFactory.create(display_name="Fake economy", api_base=fake_provider.url, tier="economy")
