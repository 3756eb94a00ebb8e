"""Calls from synchronous code (Celery tasks) run on a private event loop each; the HTTP clients litellm
caches for that loop must be closed with it, or each call leaks an aiohttp session ("Unclosed client
session" once litellm's client cache evicts it) and the cache fills with clients bound to dead loops."""

from __future__ import annotations

import gc
from typing import Any

import aiohttp
import pytest

from portal.routing.services import model_complete
from tests.routing.conftest import decision_for, gate

pytestmark = pytest.mark.django_db


def _open_sessions() -> int:
    gc.collect()
    return sum(1 for item in gc.get_objects() if type(item) is aiohttp.ClientSession and not item.closed)


def test_synchronous_calls_leave_no_client_session_open(sam: Any, fake_model: Any, fake_provider: Any):
    import litellm

    destinations = [fake_model.destination()]
    cache = getattr(litellm, "in_memory_llm_clients_cache", None)
    cached_before = set(getattr(cache, "cache_dict", {}))
    before = _open_sessions()

    for _ in range(5):
        text, outcome = model_complete(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))
        assert outcome.outcome == "success" and text

    assert len(fake_provider.requests) == 5
    assert _open_sessions() == before
    cache = getattr(litellm, "in_memory_llm_clients_cache", None)
    added = set(getattr(cache, "cache_dict", {})) - cached_before
    assert [key for key in added if str(key).rsplit("-", 1)[-1].isdigit()] == []  # no client bound to a dead loop
