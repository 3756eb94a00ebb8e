from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from governance import known_entities
from governance.gate import Destination

CLOUD = Destination(key="model:1", provider="openai", region="us")
CLOUD_EU_ZDR = Destination(key="model:2", provider="anthropic", region="eu", zero_data_retention=True)
LOCAL = Destination(key="offline", provider="offline", is_local=True)


@pytest.fixture
def customer_names() -> Iterator[list[str]]:
    """A registered source of known entities, as the customers app registers its records."""
    names = ["Marguerite Okonkwo-Lind", "Björn Ærøskøbing"]
    known_entities.register_source(
        "test-customers", lambda: [known_entities.KnownEntity(name, "PERSON", "customer") for name in names]
    )
    yield names
    known_entities._sources.pop("test-customers", None)


@pytest.fixture
def publish(olivia: Any) -> Any:
    from governance.services import policy_publish

    def _publish(document: dict[str, Any], reason: str = "test change") -> Any:
        return policy_publish(actor=olivia, reason=reason, document=document)

    return _publish


@pytest.fixture(autouse=True)
def _static_files_without_manifest(settings: Any) -> None:
    """The storages handler may be set up before tests/conftest.py swaps the static storage; setting it
    again through the `settings` fixture sends setting_changed, which resets the handler."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
