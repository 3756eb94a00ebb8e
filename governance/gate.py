"""The egress gate: the one door between a locally built prompt and a model.

Contract shared by the assistant (which builds prompt parts), governance (which decides what of them
may leave) and routing (which refuses anything the gate did not seal):

    parts = [PromptPart(kind="instructions", text=..., role="system"), PromptPart(kind="chunk", ...), ...]
    gated = egress_gate(user=user, conversation_key="conv-42", destinations=[...], parts=parts)
    # gated.messages: exactly what may be sent; gated.manifest: what was found/sent/withheld and why
    # gated.destinations: the subset of the candidate destinations this prompt is cleared for
    router call -> verify_sealed(gated, destination) before any byte leaves
    restorer = gated.restorer(); shown = restorer.feed(chunk) ...; shown += restorer.finish()

This first version is the pass-through the Assistant issue asks for: it sends every part unchanged and
records that in the manifest. The Governance issue replaces `_apply_policy` (classification, policy,
pseudonymization, fail closed) without changing this interface.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings

PART_KINDS = ("instructions", "history", "chunk", "memory", "customer", "question")
ERROR_NOT_SEALED = "This prompt did not pass the egress gate; it is not sent."
ERROR_WRONG_DESTINATION = "This prompt was not cleared for {destination}; it is not sent."


@dataclass(frozen=True)
class Destination:
    """Where a prompt may go: one model deployment of the routing catalog."""

    key: str  # stable id, e.g. "model:12" or "offline"
    provider: str  # e.g. "anthropic", "openai", "offline"
    is_local: bool = False  # the built-in offline model: nothing leaves the server
    zero_data_retention: bool = False
    region: str = ""


@dataclass(frozen=True)
class PromptPart:
    kind: str  # one of PART_KINDS
    text: str
    role: str = "user"  # chat role when sent: "system", "user" or "assistant"
    source: dict[str, Any] = field(default_factory=dict)  # e.g. chunk id, knowledge base id and label


class Restorer(Protocol):
    def feed(self, text: str) -> str: ...

    def finish(self) -> str: ...


class PassThroughRestorer:
    def feed(self, text: str) -> str:
        return text

    def finish(self) -> str:
        return ""


@dataclass(frozen=True)
class GatedPrompt:
    messages: tuple[dict[str, str], ...]
    manifest: dict[str, Any]
    destinations: tuple[str, ...]  # Destination.key values this prompt is cleared for
    seal: str
    conversation_key: str = ""

    def restorer(self) -> Restorer:
        return PassThroughRestorer()

    @property
    def prompt_sha256(self) -> str:
        return hashlib.sha256(_canonical(self.messages).encode()).hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _seal(messages: Sequence[dict[str, str]], destinations: Sequence[str]) -> str:
    key = hashlib.sha256(("egress-gate:" + settings.SECRET_KEY).encode()).digest()
    payload = _canonical({"messages": list(messages), "destinations": list(destinations)})
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def verify_sealed(gated: GatedPrompt, destination_key: str) -> None:
    """Raise PermissionError unless the gate sealed exactly these messages for this destination."""
    expected = _seal(gated.messages, gated.destinations)
    if not isinstance(gated, GatedPrompt) or not hmac.compare_digest(expected, gated.seal):
        raise PermissionError(ERROR_NOT_SEALED)
    if destination_key not in gated.destinations:
        raise PermissionError(ERROR_WRONG_DESTINATION.format(destination=destination_key))


def _apply_policy(
    *, user: Any, conversation_key: str, destinations: Sequence[Destination], parts: Sequence[PromptPart]
) -> tuple[list[dict[str, str]], dict[str, Any], list[str]]:
    messages = [{"role": part.role, "content": part.text} for part in parts if part.text]
    manifest = {
        "gate": "pass-through",
        "policy_version": None,
        "parts": [
            {"kind": part.kind, "source": part.source, "decision": "sent", "chars": len(part.text), "findings": []}
            for part in parts
        ],
        "destinations": [destination.key for destination in destinations],
    }
    return messages, manifest, [destination.key for destination in destinations]


def egress_gate(
    *, user: Any, conversation_key: str, destinations: Sequence[Destination], parts: Sequence[PromptPart]
) -> GatedPrompt:
    for part in parts:
        if part.kind not in PART_KINDS:
            raise ValueError(f"unknown prompt part kind {part.kind!r}")
    messages, manifest, cleared = _apply_policy(
        user=user, conversation_key=conversation_key, destinations=destinations, parts=parts
    )
    return GatedPrompt(
        messages=tuple(messages),
        manifest=manifest,
        destinations=tuple(cleared),
        seal=_seal(messages, cleared),
        conversation_key=conversation_key,
    )
