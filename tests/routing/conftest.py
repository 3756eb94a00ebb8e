from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from governance.gate import Destination, GatedPrompt, _seal
from portal.routing.types import CallOutcome, RouteDecision, StreamDelta
from tests.fakes.router import fresh_router
from tests.routing.factories import CatalogModelFactory

FAKE_KEY = "sk-fake-test-key-0123456789"
KEY_VARIABLE = "FAKE_PROVIDER_KEY"


@pytest.fixture(autouse=True)
def _fresh_router(settings: Any) -> Iterator[None]:
    with fresh_router(settings):
        yield


@pytest.fixture
def provider_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_VARIABLE, FAKE_KEY)
    return FAKE_KEY


@pytest.fixture
def fake_model(db: None, fake_provider: Any, provider_key: str) -> Any:
    """A catalog model of the standard tier answering from the fake provider server."""
    return CatalogModelFactory.create(display_name="Fake primary", api_base=fake_provider.url, tier="standard")


def gate(user: Any, candidates: Sequence[Destination], question: str = "What is our refund policy?") -> GatedPrompt:
    """A prompt sealed for these destinations the way the egress gate seals it.

    Routing only relies on the seal (verify_sealed) and the cleared destinations, so the tests seal directly
    and do not depend on the governance policy in force.
    """
    messages = (
        {"role": "system", "content": "Answer from the passages."},
        {"role": "user", "content": "[1] Source: Refund policy\nRefunds are paid within 14 days of a return."},
        {"role": "user", "content": question},
    )
    keys = tuple(candidate.key for candidate in candidates)
    manifest = {"gate": "test", "destinations": list(keys)}
    return GatedPrompt(messages=messages, manifest=manifest, destinations=keys, seal=_seal(messages, keys))


def run_stream(**kwargs: Any) -> tuple[list[StreamDelta], CallOutcome]:
    from portal.routing.services import model_stream

    async def collect() -> tuple[list[StreamDelta], CallOutcome]:
        deltas: list[StreamDelta] = []
        outcomes: list[CallOutcome] = []
        async for item in model_stream(**kwargs):
            if isinstance(item, CallOutcome):
                outcomes.append(item)
            else:
                assert not outcomes, "nothing may follow the CallOutcome"
                deltas.append(item)
        assert len(outcomes) == 1
        return deltas, outcomes[0]

    return async_to_sync(collect)()


def shown_text(deltas: Sequence[StreamDelta]) -> str:
    text = ""
    for delta in deltas:
        text = "" if delta.reset else text + delta.text
    return text


def decision_for(candidates: Sequence[Destination], *, tier: str = "standard") -> RouteDecision:
    return RouteDecision(task_type="routine", tier=tier, candidates=tuple(candidates), reason="test")
