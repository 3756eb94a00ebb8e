"""The hash chain of the audit trail, in plain Python so it can be checked away from the portal.

hash(event) = SHA-256( canonical JSON of the event's fields, including previous_hash ).
The canonical JSON sorts keys, uses no insignificant white space, keeps non-ASCII characters as
UTF-8 and writes times as UTC ISO-8601 with microseconds, so any copy of the fields (a database row,
a line of a JSONL export) gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

GENESIS_HASH = "0" * 64
ZERO_OFFSET = timedelta(0)
HASHED_FIELDS = (
    "seq",
    "created_at",
    "actor_id",
    "actor_username",
    "actor_roles",
    "action",
    "object_type",
    "object_id",
    "outcome",
    "details",
    "previous_hash",
)


def format_time(moment: datetime) -> str:
    """UTC, ISO-8601, always six fraction digits: "2026-01-31T09:05:00.000000Z"."""
    if moment.utcoffset() != ZERO_OFFSET:
        moment = moment.astimezone(UTC)
    # isoformat() gives the same text as strftime("%Y-%m-%dT%H:%M:%S.%f") about ten times faster
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def normalise_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """Round-trip details through JSON so what is hashed is exactly what JSONB gives back."""
    normalised: dict[str, Any] = json.loads(json.dumps(dict(details or {}), default=str, allow_nan=False))
    return normalised


def event_hash(fields: Mapping[str, Any]) -> str:
    payload = {name: fields[name] for name in HASHED_FIELDS}
    if isinstance(payload["created_at"], datetime):
        payload["created_at"] = format_time(payload["created_at"])
    payload["actor_roles"] = list(payload["actor_roles"] or [])
    payload["object_id"] = str(payload["object_id"] or "")
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    event_id: Any
    reason: str


@dataclass(frozen=True)
class ChainReport:
    checked: int
    first_break: ChainBreak | None
    head_seq: int
    head_hash: str

    @property
    def intact(self) -> bool:
        return self.first_break is None


def verify_events(events: Iterable[Mapping[str, Any]]) -> ChainReport:
    """Walk events in `seq` order; stop at the first one that does not fit the chain."""
    expected_previous = GENESIS_HASH
    expected_seq = 1
    checked = 0
    for event in events:
        seq = int(event["seq"])
        if seq != expected_seq:
            reason = f"sequence gap: expected event #{expected_seq}, found #{seq} (events removed or reordered)"
            return ChainReport(checked, ChainBreak(seq, event.get("id"), reason), expected_seq - 1, expected_previous)
        if event["previous_hash"] != expected_previous:
            reason = "previous_hash does not match the hash of the event before it"
            return ChainReport(checked, ChainBreak(seq, event.get("id"), reason), expected_seq - 1, expected_previous)
        recomputed = event_hash(event)
        if recomputed != event["hash"]:
            reason = "content does not match its hash (the event was altered)"
            return ChainReport(checked, ChainBreak(seq, event.get("id"), reason), expected_seq - 1, expected_previous)
        checked += 1
        expected_previous = event["hash"]
        expected_seq += 1
    return ChainReport(checked, None, expected_seq - 1, expected_previous)
