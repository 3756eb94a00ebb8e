"""The audit hash against fixed known answers, and tampering with any hashed field, in Python and in the database.

The expected digests were computed once, independently of audit.chain, with

    hashlib.sha256(CANONICAL.encode("utf-8")).hexdigest()

over the canonical JSON strings written out by hand below. Any change to the canonical form (key order,
separators, ASCII escaping, time format, how roles or object ids are written) changes the digest and fails
here: exported trails and signed checkpoints made before such a change would stop verifying.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from django.db import connection
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from audit.chain import GENESIS_HASH, HASHED_FIELDS, event_hash, format_time, verify_events
from audit.models import AuditEvent
from audit.selectors import audit_trail_verify
from audit.services import audit
from tests.database import empty_audit_table, superuser_sql

# ---- known answers ------------------------------------------------------------------------------------
# A time an hour east of UTC with a microsecond, roles in the order they were given (not sorted), an
# integer object id, nested details with keys out of order, non-ASCII text kept as UTF-8, floats, null, true.
EVENT = {
    "id": 99,  # not hashed
    "hash": "not hashed either",
    "seq": 42,
    "created_at": datetime(2026, 1, 31, 10, 5, 0, 7, tzinfo=timezone(timedelta(hours=1))),
    "actor_id": 7,
    "actor_username": "zoë",
    "actor_roles": ("Staff", "Auditor"),
    "action": "knowledge.document_viewed",
    "object_type": "knowledge.document",
    "object_id": 123,
    "outcome": "success",
    "details": {"b": [1, 2.5, None, True], "a": {"z": "é ✓", "y": ""}},
    "previous_hash": "ab" * 32,
}
CANONICAL = (
    '{"action":"knowledge.document_viewed","actor_id":7,"actor_roles":["Staff","Auditor"],'
    '"actor_username":"zoë","created_at":"2026-01-31T09:05:00.000007Z",'
    '"details":{"a":{"y":"","z":"é ✓"},"b":[1,2.5,null,true]},"object_id":"123",'
    '"object_type":"knowledge.document","outcome":"success",'
    '"previous_hash":"abababababababababababababababababababababababababababababababab","seq":42}'
)
DIGEST = "b7caf36d64777528ec60b0977cc7224c08528016751527dcd5bbb0bf1efb13f8"

# The first event of a chain, as the database gives it back: the time already in text form, no actor,
# roles and object id empty (None for both means the same).
GENESIS_EVENT = {
    "seq": 1,
    "created_at": "2026-12-01T00:00:00.000000Z",
    "actor_id": None,
    "actor_username": "",
    "actor_roles": None,
    "action": "auth.login_failed",
    "object_type": "",
    "object_id": None,
    "outcome": "failure",
    "details": {},
    "previous_hash": GENESIS_HASH,
}
GENESIS_CANONICAL = (
    '{"action":"auth.login_failed","actor_id":null,"actor_roles":[],"actor_username":"",'
    '"created_at":"2026-12-01T00:00:00.000000Z","details":{},"object_id":"","object_type":"",'
    '"outcome":"failure","previous_hash":"0000000000000000000000000000000000000000000000000000000000000000",'
    '"seq":1}'
)
GENESIS_DIGEST = "d23f0b2a72563e12b3b3856b7df05ccbb00c98f2a9c1b4e7719014efe7e51c13"


@pytest.mark.parametrize(
    ("event", "canonical", "digest"),
    [(EVENT, CANONICAL, DIGEST), (GENESIS_EVENT, GENESIS_CANONICAL, GENESIS_DIGEST)],
    ids=["full", "genesis"],
)
def test_the_event_hash_matches_its_known_answer(event: dict[str, Any], canonical: str, digest: str) -> None:
    # the literal is the hash of the hand-written string (so the vector itself is right) ...
    assert hashlib.sha256(canonical.encode("utf-8")).hexdigest() == digest
    # ... and event_hash writes exactly that string for the event
    assert event_hash(event) == digest


def test_the_known_answer_covers_every_hashed_field() -> None:
    """A new hashed field (or a dropped one) must come with a new vector."""
    assert sorted(json.loads(CANONICAL)) == sorted(HASHED_FIELDS)
    assert sorted(json.loads(GENESIS_CANONICAL)) == sorted(HASHED_FIELDS)


def test_the_same_moment_in_any_time_zone_hashes_the_same() -> None:
    utc = {**EVENT, "created_at": datetime(2026, 1, 31, 9, 5, 0, 7, tzinfo=UTC)}
    as_text = {**EVENT, "created_at": "2026-01-31T09:05:00.000007Z"}
    assert event_hash(utc) == event_hash(as_text) == DIGEST


# ---- tampering with any hashed field --------------------------------------------------------------------
def _canonical_value(name: str, value: Any) -> Any:
    """What the hash sees of a field's value (None and [] are the same roles, None and "" the same id)."""
    if name == "created_at" and isinstance(value, datetime):
        return format_time(value)
    if name == "actor_roles":
        return list(value or [])
    if name == "object_id":
        return str(value or "")
    return value


# PostgreSQL's JSONB (and text) cannot hold NUL characters, so the values a superuser could write have none
json_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12)
json_scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | json_text
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(json_text, children, max_size=3),
    max_leaves=6,
)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)).map(
    format_time
)
hex_hashes = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
short_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40)
REPLACEMENTS: dict[str, st.SearchStrategy[Any]] = {
    "seq": st.integers(1, 10**6),
    "created_at": moments,
    "actor_id": st.none() | st.integers(1, 10**6),
    "actor_username": short_text,
    "actor_roles": st.lists(st.sampled_from(["Staff", "Auditor", "Administrator", "Governance officer"]), max_size=3),
    "action": short_text,
    "object_type": short_text,
    "object_id": short_text,
    "outcome": st.sampled_from(["success", "denied", "failure", "error"]),
    "details": st.dictionaries(json_text, json_values, max_size=3),
    "previous_hash": hex_hashes,
}
assert set(REPLACEMENTS) == set(HASHED_FIELDS)  # every hashed field can be tampered with below


def _chain(length: int) -> list[dict[str, Any]]:
    events, previous = [], GENESIS_HASH
    for seq in range(1, length + 1):
        fields: dict[str, Any] = {
            "id": 1000 + seq, "seq": seq, "created_at": f"2026-02-0{1 + seq % 9}T12:00:00.00000{seq % 10}Z",
            "actor_id": seq, "actor_username": f"user{seq}", "actor_roles": ["Staff"], "action": "test.event",
            "object_type": "test.thing", "object_id": str(seq), "outcome": "success", "details": {"n": seq},
            "previous_hash": previous,
        }  # fmt: skip
        fields["hash"] = event_hash(fields)
        previous = fields["hash"]
        events.append(fields)
    return events


@given(length=st.integers(1, 6), data=st.data())
@settings(max_examples=300, deadline=None)
def test_tampering_with_any_hashed_field_of_any_event_is_detected(length: int, data: st.DataObject) -> None:
    events = _chain(length)
    index = data.draw(st.integers(0, length - 1), label="event")
    name = data.draw(st.sampled_from(HASHED_FIELDS), label="field")
    replacement = data.draw(REPLACEMENTS[name], label="replacement")
    assume(_canonical_value(name, replacement) != _canonical_value(name, events[index][name]))
    events[index][name] = replacement

    report = verify_events(events)

    assert not report.intact
    assert report.first_break is not None and report.first_break.event_id == events[index]["id"]
    assert report.first_break.reason.startswith(REASONS.get(name, "content does not match its hash"))
    # every event before the tampered one still verifies, and the report's head is the last of them
    assert report.checked == report.head_seq == index
    assert report.head_hash == (events[index - 1]["hash"] if index else GENESIS_HASH)


REASONS = {"seq": "sequence gap: expected event #", "previous_hash": "previous_hash does not match"}


@given(length=st.integers(0, 6))
@settings(max_examples=20, deadline=None)
def test_an_intact_chain_reports_its_head(length: int) -> None:
    events = _chain(length)
    report = verify_events(events)
    assert report.intact and report.first_break is None
    assert report.checked == report.head_seq == length
    assert report.head_hash == (events[-1]["hash"] if events else GENESIS_HASH)


# ---- the same in the database, through audit_trail_verify -----------------------------------------------
COLUMN_SQL = {"actor_roles": "%s::jsonb", "details": "%s::jsonb", "created_at": "%s::timestamptz"}


def _tamper(event_id: int, name: str, value: Any) -> None:
    """Change one column the way a database superuser could: on the superuser's own connection, with the
    append-only trigger switched off (the portal's role can do neither: tests/audit/test_privileges.py)."""
    if name in ("actor_roles", "details"):
        value = json.dumps(value)
    superuser_sql(f"UPDATE audit_auditevent SET {name} = {COLUMN_SQL.get(name, '%s')} WHERE id = %s", [value, event_id])


def _stored(event_id: int) -> dict[str, Any]:
    from audit.selectors import audit_events_for_verification

    return next(event for event in audit_events_for_verification() if event["id"] == event_id)


@pytest.mark.django_db(transaction=True)  # the superuser's connection sees committed rows only
@given(length=st.integers(1, 4), data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_tampering_with_any_hashed_column_is_found_by_the_database_verification(
    sam: Any, length: int, data: st.DataObject
) -> None:
    try:
        # each example writes, tampers and checks committed rows, then empties the trail
        written = [
            audit(actor=sam, action="test.tamper", target=sam, details={"n": n, "text": "héllo ✓"})
            for n in range(length)
        ]
        before = audit_trail_verify()
        assert before.intact, before.first_invalid_event
        victim = written[data.draw(st.integers(0, length - 1), label="event")]
        name = data.draw(st.sampled_from(HASHED_FIELDS), label="field")
        replacement = data.draw(REPLACEMENTS[name], label="replacement")
        if name == "seq":
            replacement += 10**9  # seq is unique: move the event past the end of the chain
        original = _stored(victim.pk)
        _tamper(victim.pk, name, replacement)
        changed = _stored(victim.pk)
        # the database may store a value the way the hash already saw it (e.g. [] for no roles)
        assume(_canonical_value(name, changed[name]) != _canonical_value(name, original[name]))

        report = audit_trail_verify()

        assert not report.intact
        broken = report.first_invalid_event
        assert broken is not None
        if name == "seq":
            # the walk finds a gap where the event was (or, if it was the last, the event past the end)
            assert broken.seq in {victim.seq, victim.seq + 1, replacement}
        else:
            assert broken.seq == victim.seq and broken.event_id == victim.pk
    finally:
        empty_audit_table(connection.settings_dict["NAME"])
    assert AuditEvent.objects.filter(action="test.tamper").count() == 0  # the next example starts clean
