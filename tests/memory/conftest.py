from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from portal.routing.router import cooldowns, router_cache


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
    """No retry pauses, and no cooldown or cached router carried over from another test."""
    settings.ROUTING_RETRY_MIN_SECONDS = 0
    cooldowns.clear()
    router_cache.clear()
    yield
    cooldowns.clear()


@pytest.fixture
def fake_model(db: None, fake_provider: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An economy-tier catalog model answering from the fake provider server (memory learning's tier)."""
    from tests.routing.factories import CatalogModelFactory

    monkeypatch.setenv("FAKE_PROVIDER_KEY", "sk-fake-memory-key-0123456789")
    return CatalogModelFactory(display_name="Fake economy", api_base=fake_provider.url, tier="economy")
