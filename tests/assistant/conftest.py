from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.assistant.factories import AssistantProfileFactory, ConversationFactory, knowledge_base_with
from tests.fakes.router import fresh_router

FAKE_KEY = "sk-fake-assistant-key-0123456789"
KEY_VARIABLE = "FAKE_PROVIDER_KEY"
REFUND_TEXT = "Refunds are paid within 14 days of the returned goods arriving at the warehouse."
HOLIDAY_TEXT = "Staff take holidays after agreeing the dates with their team lead two weeks ahead."


@pytest.fixture(autouse=True)
def _fresh_router(settings: Any) -> Iterator[None]:
    # Through the settings fixture, so Django resets its cached storages: the session-wide override in
    # tests/conftest.py comes after knowledge's FileField has already built the storages.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with fresh_router(settings):
        yield


@pytest.fixture
def handbook(db: None) -> Any:
    return knowledge_base_with(
        name="Handbook",
        passages=[("Refund policy", REFUND_TEXT, 3), ("Holidays", HOLIDAY_TEXT, None)],
    )


@pytest.fixture
def profile(db: None, handbook: Any) -> Any:
    return AssistantProfileFactory.create(name="Handbook helper", usable_by=["Staff"], knowledge_bases=[handbook])


@pytest.fixture
def conversation(sam: Any, profile: Any) -> Any:
    return ConversationFactory.create(owner=sam, profile=profile)


@pytest.fixture
def fake_model(db: None, fake_provider: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A standard-tier catalog model answering from the fake provider server."""
    from tests.routing.factories import CatalogModelFactory

    monkeypatch.setenv(KEY_VARIABLE, FAKE_KEY)
    return CatalogModelFactory.create(display_name="Fake primary", api_base=fake_provider.url, tier="standard")
