"""A change to a known-entity source made in another process reaches this process's dictionary at its next
lookup: the sources' tables notify a channel when the writer commits, and a thread of each process listens.
Real PostgreSQL notifications, from a second connection standing in for the other process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import connection, transaction

from governance import known_entities
from tests.accounts.factories import UserFactory
from tests.customers.factories import CustomerFactory, InteractionFactory
from tests.governance.factories import TermListFactory

pytestmark = pytest.mark.django_db(transaction=True)
DEADLINE_SECONDS = 60.0  # a notification normally arrives in milliseconds; a loaded machine may take longer


def _params() -> dict[str, Any]:
    params = dict(connection.get_connection_params())
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return params


@pytest.fixture
def other_process() -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(**_params(), autocommit=True) as conn:
        yield conn


def _until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"not within {DEADLINE_SECONDS:.0f} s: {what}"
        time.sleep(0.05)


def test_a_committed_write_to_each_source_table_notifies_and_a_rolled_back_one_does_not(
    other_process: psycopg.Connection[Any],
) -> None:
    other_process.execute(f"LISTEN {known_entities.CHANGE_CHANNEL}")
    with pytest.raises(RuntimeError), transaction.atomic():
        UserFactory.create(username="never-committed")
        raise RuntimeError("rolled back")
    UserFactory.create(username="zoe")
    TermListFactory.create()
    InteractionFactory.create(customer=CustomerFactory.create())
    heard: set[str] = set()
    deadline = time.monotonic() + DEADLINE_SECONDS
    wanted = {"auth_user", "governance_termlist", "customers_customer", "customers_interaction"}
    while not wanted <= heard and time.monotonic() < deadline:
        heard |= {n.payload for n in other_process.notifies(timeout=1.0) if n.channel == known_entities.CHANGE_CHANNEL}
    assert wanted <= heard
    # the rolled-back user sent nothing: every notification heard came after a commit (one per table here)
    assert not {n.payload for n in other_process.notifies(timeout=0.2)}


def test_another_process_s_change_is_found_at_the_next_lookup_without_waiting_for_the_ttl(
    settings: Any, other_process: psycopg.Connection[Any]
) -> None:
    settings.GOVERNANCE_KNOWN_ENTITIES_TTL = 3600  # only a notification can make this process look again
    settings.GOVERNANCE_KNOWN_ENTITIES_LISTEN = True
    email = "zebediah.quixote@example.org"
    text = f"Please write to {email} about the order."
    try:
        listener = known_entities.change_listener_start()
        assert listener is not None
        _until(known_entities.change_listener_listening, "the listener is listening")
        assert not known_entities.known_entity_findings(text)  # the dictionary is built without that address
        before = listener.notifications

        other_process.execute(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff,"
            " is_active, date_joined) VALUES ('!', false, 'zebediah', 'Zebediah', 'Quixote', %s, false, true, now())",
            [email],
        )

        _until(lambda: listener.notifications > before, "the notification reached the listener")
        findings = known_entities.known_entity_findings(text)
        assert [text[f.start : f.end] for f in findings] == [email]
    finally:
        known_entities.change_listener_stop()
    assert not known_entities.change_listener_listening()


def test_without_the_listener_the_ttl_still_applies(settings: Any, other_process: psycopg.Connection[Any]) -> None:
    settings.GOVERNANCE_KNOWN_ENTITIES_TTL = 3600
    settings.GOVERNANCE_KNOWN_ENTITIES_LISTEN = False
    assert known_entities.change_listener_start() is None
    text = "Write to ada.lovelace@example.org today."
    assert not known_entities.known_entity_findings(text)
    other_process.execute(
        "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff,"
        " is_active, date_joined) VALUES ('!', false, 'ada', 'Ada', 'Lovelace', 'ada.lovelace@example.org', false,"
        " true, now())"
    )
    assert not known_entities.known_entity_findings(text)  # within the TTL, unheard: kept as it was
    settings.GOVERNANCE_KNOWN_ENTITIES_TTL = 0
    assert known_entities.known_entity_findings(text)  # the TTL's fingerprint check finds the change


def test_a_check_asked_for_is_made_on_a_machine_up_for_less_than_the_ttl(settings: Any, monkeypatch) -> None:
    """The monotonic clock may start near 0 at boot: a notification's "check at the next lookup" must not
    read as a check made at second 0 (on a machine up for five seconds that looked fresh for an hour)."""
    from types import SimpleNamespace

    settings.GOVERNANCE_KNOWN_ENTITIES_TTL = 3600
    settings.GOVERNANCE_KNOWN_ENTITIES_LISTEN = False
    monkeypatch.setattr(known_entities, "time", SimpleNamespace(monotonic=lambda: 5.0))
    known_entities.invalidate()
    known_entities.current_index()  # built and checked, five seconds after boot
    checks: list[int] = []
    real = known_entities.sources_fingerprint

    def counting() -> object | None:
        checks.append(1)
        return real()

    monkeypatch.setattr(known_entities, "sources_fingerprint", counting)
    known_entities.current_index()
    assert checks == []  # within the TTL: kept without a check
    known_entities._check_soon()  # what a notification from another process does
    known_entities.current_index()
    assert checks == [1]
