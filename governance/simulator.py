"""What would leave: the real egress gate, run for a chosen role, destination and policy (nothing is sent)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from governance.gate import Destination, EgressBlocked, PromptPart, egress_gate
from governance.selectors import require_policy_manager

LOCAL_DESTINATION = Destination(key="offline", provider="offline", is_local=True)
_destination_sources: dict[str, Callable[[], list[Destination]]] = {}


@dataclass(frozen=True)
class Simulation:
    messages: tuple[dict[str, str], ...]
    manifest: dict[str, Any]
    destinations: tuple[str, ...]
    blocked: str = ""


def register_destination_source(name: str, loader: Callable[[], list[Destination]]) -> None:
    """Add (or replace) a named source of destinations to simulate. The routing catalog registers itself in
    its AppConfig.ready(): governance sits below the portal's apps and does not import them."""
    _destination_sources[name] = loader


def simulation_destinations() -> list[Destination]:
    """The registered destinations (the routing catalog's enabled models) and the local model."""
    destinations = [destination for loader in _destination_sources.values() for destination in loader()]
    return [*destinations, LOCAL_DESTINATION]


def simulate(
    *,
    actor: Any,
    parts: list[PromptPart],
    role: str,
    destination: Destination,
    policy_document: dict[str, Any] | None = None,
    sensitive: bool = False,
) -> Simulation:
    require_policy_manager(actor)
    try:
        gated = egress_gate(
            user=actor,
            conversation_key=f"simulator-{uuid.uuid4().hex}",
            destinations=[destination],
            parts=parts,
            roles=[role],
            policy_document=policy_document,
            persist_vault=False,
            sensitive=sensitive,
        )
    except EgressBlocked as blocked:
        return Simulation(messages=(), manifest={}, destinations=(), blocked=str(blocked))
    return Simulation(messages=gated.messages, manifest=gated.manifest, destinations=gated.destinations)
