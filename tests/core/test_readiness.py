"""/readyz: a web process is ready once the embedding model is loaded and the database answers."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.test import Client

from knowledge import embeddings

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
