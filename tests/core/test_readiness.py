"""/readyz: a web process is ready once the embedding model is loaded and the database answers."""

from __future__ import annotations

import gc
import threading
from typing import Any

import pytest
from django.test import Client

from knowledge import embeddings
from portal import readiness

pytestmark = pytest.mark.django_db


def test_readyz_waits_for_the_embedding_model(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    settings.PORTAL_WARM_UP = True
    monkeypatch.setattr(embeddings, "_models", {})
    monkeypatch.setattr(embeddings, "_warm", threading.Event())

    cold = Client().get("/readyz")
    assert cold.status_code == 503 and cold.json() == {"status": "warming up"}

    embeddings.warm_up_in_background().join(timeout=300)

    warm = Client().get("/readyz")
    assert warm.status_code == 200 and warm.json() == {"status": "ready"}
    assert Client().get("/healthz").status_code == 200  # liveness never waited


@pytest.fixture
def unfrozen() -> Any:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test run collects as usual


def test_a_web_process_freezes_its_start_up_objects_once_warm(unfrozen: None, settings: Any) -> None:
    """The objects loaded at start (Django, litellm, the embedding model) are kept out of the collector's
    reach once the model is warm, so the collections a streamed answer triggers do not walk them."""
    assert gc.get_freeze_count() == 0
    settings.PORTAL_WARM_UP = True
    warming = readiness.web_process_started()  # warms the model in a thread, then freezes
    assert warming is not None
    warming.join(timeout=300)
    assert embeddings.is_warm()
    assert gc.get_freeze_count() > 10_000

    gc.unfreeze()
    settings.PORTAL_WARM_UP = False
    readiness.web_process_started()  # nothing to warm: frozen at once
    assert gc.get_freeze_count() > 10_000
