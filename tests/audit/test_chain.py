from __future__ import annotations

import threading
from collections.abc import Callable
from io import StringIO
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.db import connections, transaction
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.chain import GENESIS_HASH, event_hash, verify_events
from audit.models import AuditEvent
from audit.selectors import audit_chain_verify
from audit.services import audit
from tests.audit.factories import TAMPERING, superuser_sql
from tests.database import superuser_connect


def _write(count: int, actor: Any = None) -> list[AuditEvent]:
    return [audit(actor=actor, action="test.event", details={"n": n, "text": "héllo ✓"}) for n in range(count)]


@pytest.mark.django_db
def test_events_link_to_the_one_before(sam: Any) -> None:
    first, second = _write(2, actor=sam)
    assert first.seq + 1 == second.seq
    assert second.previous_hash == first.hash
    assert first.actor_roles == ["Staff"]
    assert first.actor_username == "sam"


@pytest.mark.django_db
def test_the_first_event_starts_from_the_genesis_hash() -> None:
    AuditEvent.objects.exists() and pytest.skip("the chain is not empty in this database")
    (event,) = _write(1)
    assert event.seq == 1
    assert event.previous_hash == GENESIS_HASH


@pytest.mark.django_db
def test_an_untouched_chain_verifies() -> None:
    _write(5)
    report = audit_chain_verify()
    assert report.intact
    assert report.checked == AuditEvent.objects.count()


@pytest.mark.django_db
def test_an_event_rolls_back_with_the_change_it_records() -> None:
    before = AuditEvent.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        audit(actor=None, action="test.rolled_back")
        raise RuntimeError("the caller's change failed")
    assert AuditEvent.objects.count() == before
    assert audit_chain_verify().intact


@TAMPERING
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET action = 'x'",
        "DELETE FROM audit_auditevent",
        "TRUNCATE audit_auditevent",
    ],
)
def test_the_trigger_refuses_to_change_or_remove_events_even_for_a_superuser(statement: str) -> None:
    # The portal role is refused earlier, by its privileges (test_privileges.py); the trigger is the second
    # wall, for every other role, superusers included, unless they switch it off.
    (event,) = _write(1)
    before = list(AuditEvent.objects.values_list("seq", "action"))
    with superuser_connect() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        conn.execute(statement)
    assert list(AuditEvent.objects.values_list("seq", "action")) == before
    assert (event.seq, event.action) in before


TAMPERINGS: dict[str, Callable[[list[AuditEvent]], None]] = {
    "alter details": lambda events: superuser_sql(
        "UPDATE audit_auditevent SET details = '{\"n\": 99}' WHERE id = %s", [events[2].id]
    ),
    "alter actor": lambda events: superuser_sql(
        "UPDATE audit_auditevent SET actor_username = 'someone else' WHERE id = %s", [events[2].id]
    ),
    "delete a row": lambda events: superuser_sql("DELETE FROM audit_auditevent WHERE id = %s", [events[2].id]),
    "insert a forged row": lambda events: _forge_insert(events),
    "reorder rows": lambda events: _swap(events[2], events[3]),
}


def _swap(first: AuditEvent, second: AuditEvent) -> None:
    superuser_sql("UPDATE audit_auditevent SET seq = -1 WHERE id = %s", [first.id])
    superuser_sql("UPDATE audit_auditevent SET seq = %s WHERE id = %s", [first.seq, second.id])
    superuser_sql("UPDATE audit_auditevent SET seq = %s WHERE id = %s", [second.seq, first.id])


def _forge_insert(events: list[AuditEvent]) -> None:
    # Shift the tail up by one and put a forged, self-consistent event in the gap.
    superuser_sql("UPDATE audit_auditevent SET seq = seq + 1000000 WHERE seq > %s", [events[2].seq])
    superuser_sql("UPDATE audit_auditevent SET seq = seq - 1000000 + 1 WHERE seq > 1000000")
    forged = {
        "seq": events[2].seq + 1,
        "created_at": events[2].created_at,
        "actor_id": None,
        "actor_username": "mallory",
        "actor_roles": [],
        "action": "test.forged",
        "object_type": "",
        "object_id": "",
        "outcome": "success",
        "details": {},
        "previous_hash": events[2].hash,
    }
    forged["hash"] = event_hash(forged)
    superuser_sql(
        "INSERT INTO audit_auditevent (seq, created_at, actor_id, actor_username, actor_roles, action, object_type,"
        " object_id, outcome, details, previous_hash, hash)"
        " VALUES (%s, %s, NULL, %s, '[]', %s, '', '', %s, '{}', %s, %s)",
        [
            forged["seq"],
            forged["created_at"],
            "mallory",
            "test.forged",
            "success",
            forged["previous_hash"],
            forged["hash"],
        ],
    )


@TAMPERING
@pytest.mark.parametrize("tampering", sorted(TAMPERINGS))
def test_tampering_is_detected_at_the_right_event(tampering: str) -> None:
    events = _write(6)
    assert audit_chain_verify().intact
    TAMPERINGS[tampering](events)
    report = audit_chain_verify()
    assert not report.intact
    assert report.first_break is not None
    # the break is found at the tampered position (or the one right after a deletion/insertion)
    assert events[2].seq <= report.first_break.seq <= events[4].seq


@TAMPERING
def test_audit_verify_reports_the_exact_altered_event() -> None:
    events = _write(4)
    out = StringIO()
    call_command("audit_verify", stdout=out)
    assert "chain intact" in out.getvalue()
    superuser_sql("UPDATE audit_auditevent SET outcome = 'denied' WHERE id = %s", [events[1].id])
    out = StringIO()
    with pytest.raises(SystemExit, check=lambda exit_: exit_.code == 1):
        call_command("audit_verify", stdout=out)
    assert f"BROKEN at event #{events[1].seq} (id {events[1].id})" in out.getvalue()
    assert "altered" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_the_chain_linear() -> None:
    writers, per_writer = 8, 15
    errors: list[BaseException] = []
    barrier = threading.Barrier(writers)

    def write(worker: int) -> None:
        try:
            barrier.wait()
            for n in range(per_writer):
                with transaction.atomic():
                    audit(actor=None, action="test.concurrent", details={"worker": worker, "n": n})
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    seqs = list(AuditEvent.objects.filter(action="test.concurrent").values_list("seq", flat=True))
    assert len(seqs) == writers * per_writer
    report = audit_chain_verify()
    assert report.intact, report.first_break


# ---- properties of the chain itself (pure Python, no database) --------------------------------------
def _chain(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    events, previous = [], GENESIS_HASH
    for seq, details in enumerate(payloads, start=1):
        fields: dict[str, Any] = {
            "id": seq, "seq": seq, "created_at": "2026-01-01T00:00:00.000000Z", "actor_id": None,
            "actor_username": "x", "actor_roles": [], "action": "a", "object_type": "", "object_id": "",
            "outcome": "success", "details": details, "previous_hash": previous,
        }  # fmt: skip
        fields["hash"] = event_hash(fields)
        previous = fields["hash"]
        events.append(fields)
    return events


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**9), 10**9) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
payload_lists = st.lists(st.dictionaries(st.text(max_size=5), json_values, max_size=3), min_size=2, max_size=8)


@given(payload_lists)
@settings(max_examples=60, deadline=None)
def test_an_untouched_chain_never_raises_a_false_alarm(payloads: list[dict[str, Any]]) -> None:
    assert verify_events(_chain(payloads)).intact


@given(payload_lists, st.data())
@settings(max_examples=80, deadline=None)
def test_any_change_to_any_event_breaks_the_chain(payloads: list[dict[str, Any]], data: st.DataObject) -> None:
    events = _chain(payloads)
    index = data.draw(st.integers(0, len(events) - 1))
    field = data.draw(st.sampled_from(["actor_username", "action", "outcome", "details", "object_id", "created_at"]))
    replacement = data.draw(st.text(min_size=1, max_size=10) if field != "details" else st.just({"tampered": True}))
    if events[index][field] == replacement:
        return
    events[index][field] = replacement
    report = verify_events(events)
    assert not report.intact
    assert report.first_break is not None and report.first_break.seq == index + 1


@given(payload_lists, st.data())
@settings(max_examples=40, deadline=None)
def test_removing_or_swapping_events_breaks_the_chain(payloads: list[dict[str, Any]], data: st.DataObject) -> None:
    events = _chain(payloads)
    index = data.draw(st.integers(0, len(events) - 2))
    if data.draw(st.booleans()):
        del events[index]
    else:
        events[index], events[index + 1] = events[index + 1], events[index]
    assert not verify_events(events).intact
