"""One door per boundary: only the gated door and the assistant's stream call a model."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import REPO_ROOT

PRODUCT_PACKAGES = ("portal", "audit", "governance", "knowledge")
# model_stream is the assistant's streamed answer (the gate has run in its egress stage);
# model_complete is used by the gated door itself.
ALLOWED = {
    "model_stream": {
        "portal/routing/services.py",
        "portal/assistant/pipeline.py",
        "portal/routing/bench/router.py",  # the router benchmark, against a fake endpoint it starts itself
    },
    "model_complete": {"portal/routing/services.py"},
}
CALL = re.compile(r"\b(model_stream|model_complete)\s*\(")


def _product_sources() -> list[Path]:
    return [
        path
        for package in PRODUCT_PACKAGES
        for path in (REPO_ROOT / package).rglob("*.py")
        if "migrations" not in path.parts and "management" not in path.parts
    ]


def test_only_the_gated_door_and_the_assistant_stream_call_a_model() -> None:
    calls = {
        (name, str(path.relative_to(REPO_ROOT)))
        for path in _product_sources()
        for name in CALL.findall(path.read_text(encoding="utf-8"))
    }
    assert calls, "the scan found no call at all: the pattern is broken"
    strays = sorted((name, path) for name, path in calls if path not in ALLOWED[name])
    assert strays == []


def test_memory_learning_goes_through_the_gated_door() -> None:
    source = (REPO_ROOT / "portal/memory/learning.py").read_text(encoding="utf-8")
    assert "model_complete_gated(" in source and "egress_gate(" not in source
