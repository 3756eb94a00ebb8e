"""What routing hands its callers (the assistant's pipeline, the gated door): plain values, no litellm types."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from governance.gate import Destination

TASK_TYPES = ("routine", "summarize", "draft", "analyze", "research")
TIERS = ("economy", "standard", "premium", "research")
OFFLINE_TIER = "offline"
OFFLINE_KEY = "offline"
OFFLINE_PROVIDER = "offline"
OFFLINE_DESTINATION = Destination(key=OFFLINE_KEY, provider=OFFLINE_PROVIDER, is_local=True, zero_data_retention=True)


@dataclass(frozen=True)
class RouteDecision:
    task_type: str
    tier: str
    candidates: tuple[Destination, ...]
    reason: str
    budget_note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form, for storing the decision with an answer."""
        return {
            "task_type": self.task_type,
            "tier": self.tier,
            "candidates": [candidate.key for candidate in self.candidates],
            "reason": self.reason,
            "budget_note": self.budget_note,
        }


@dataclass(frozen=True)
class StreamDelta:
    """A piece of answer text.

    `reset=True` (with empty text) means: the model that produced the text so far was cut off and the
    next candidate starts again from the beginning, so discard what was shown for this answer.
    """

    text: str
    reset: bool = False


@dataclass
class CallOutcome:
    model_key: str
    model_name: str
    provider: str
    outcome: str  # "success" | "error"
    error: str
    tokens_in: int
    tokens_out: int
    cost: Decimal
    first_token_ms: float | None
    total_ms: float
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_key": self.model_key,
            "model_name": self.model_name,
            "provider": self.provider,
            "outcome": self.outcome,
            "error": self.error,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost": str(self.cost),
            "first_token_ms": self.first_token_ms,
            "total_ms": self.total_ms,
            "attempts": self.attempts,
        }
