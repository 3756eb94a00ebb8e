from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any

import pytest

from tests.routing.conftest import FAKE_KEY, decision_for, gate, run_stream

pytestmark = pytest.mark.django_db


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every address anything in this process connects to or looks up during the test."""
    seen: list[Any] = []
    original_connect = socket.socket.connect
    original_lookup = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> Any:
        seen.append(address)
        return original_connect(self, address)

    def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(host)
        return original_lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    return seen


def test_a_model_call_connects_only_to_the_configured_endpoint(
    sam: Any, fake_model: Any, fake_provider: Any, connections: list[Any]
):
    destinations = [fake_model.destination()]
    _, outcome = run_stream(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))

    assert outcome.outcome == "success"
    network = {address[0] for address in connections if isinstance(address, tuple)}
    lookups = {host for host in connections if isinstance(host, str) and not host.startswith("/")}
    assert network == {"127.0.0.1"}  # the fake provider; the database is a unix socket
    assert lookups <= {"127.0.0.1", "localhost"}


def test_the_offline_model_connects_nowhere_but_the_database(sam: Any, connections: list[Any]):
    from portal.routing.types import OFFLINE_DESTINATION

    destinations = [OFFLINE_DESTINATION]
    _, outcome = run_stream(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))

    assert outcome.outcome == "success"
    assert [address for address in connections if isinstance(address, tuple)] == []
    assert [host for host in connections if isinstance(host, str) and host not in ("127.0.0.1", "localhost")] == []


def test_importing_the_router_makes_no_connection(subprocess_env: dict[str, str]):
    code = (
        "import socket\n"
        "seen = []\n"
        "original = socket.socket.connect\n"
        "def spy(self, address):\n"
        "    seen.append(address)\n"
        "    return original(self, address)\n"
        "socket.socket.connect = spy\n"
        "import django; django.setup()\n"
        "import portal.routing.router\n"
        "print([a for a in seen if isinstance(a, tuple)])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_failures_are_logged_without_keys_or_prompts(
    sam: Any, fake_model: Any, fake_provider: Any, caplog: pytest.LogCaptureFixture, settings: Any
):
    import logging

    settings.ROUTING_NUM_RETRIES = 0
    fake_provider.script("500")
    destinations = [fake_model.destination()]
    with caplog.at_level(logging.DEBUG):
        run_stream(
            user=sam,
            gated=gate(sam, destinations, question="secret question 4711"),
            decision=decision_for(destinations),
        )

    assert f"model call failed: {fake_model.key} InternalServerError" in caplog.text
    assert FAKE_KEY not in caplog.text
    assert "4711" not in caplog.text
