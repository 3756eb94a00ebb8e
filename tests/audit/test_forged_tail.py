"""A forged tail: events after the newest checkpoint removed and others appended with correct hashes.

The hash chain cannot show it (every hash is right) and no checkpoint names the removed events, so what
`audit_verify` can do is refuse to call such a tail proven: it fails when more than AUDIT_UNCHECKPOINTED_MAX
events follow the newest checkpoint, or when that checkpoint is older than twice the checkpoint interval.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from audit.chain import event_hash, format_time
from audit.checkpoints import checkpoint_files, checkpoint_sign, checkpoint_write, load_public_key
from audit.models import AuditEvent
from audit.selectors import NOT_VERIFIED_AGE, NOT_VERIFIED_COUNT, audit_chain_verify, audit_trail_verify
from audit.services import _signing_key, audit_checkpoint_create
from audit.tasks import audit_checkpoint_task
from tests.audit.factories import TAMPERING, write_events
from tests.database import superuser_connect

_INSERT = (
    "INSERT INTO audit_auditevent (seq, created_at, actor_id, actor_username, actor_roles, action, object_type,"
    " object_id, outcome, details, previous_hash, hash) VALUES (%s, %s, NULL, %s, '[]', %s, '', '', 'success',"
    " %s, %s, %s)"
)


def forge_tail(*, after_seq: int, count: int) -> None:
    """As a database superuser: remove every event after `after_seq`, append `count` forged ones."""
    previous = AuditEvent.objects.get(seq=after_seq).hash
    with superuser_connect() as conn, conn.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")  # the DELETE needs the trigger off
        cursor.execute("DELETE FROM audit_auditevent WHERE seq > %s", [after_seq])
        for offset in range(1, count + 1):
            fields: dict[str, Any] = {
                "seq": after_seq + offset, "created_at": timezone.now(), "actor_id": None,
                "actor_username": "mallory", "actor_roles": [], "action": "test.forged", "object_type": "",
                "object_id": "", "outcome": "success", "details": {"n": offset}, "previous_hash": previous,
            }  # fmt: skip
            fields["hash"] = previous = event_hash(fields)
            values = [fields["seq"], fields["created_at"], "mallory", "test.forged", json.dumps(fields["details"]),
                      fields["previous_hash"], fields["hash"]]  # fmt: skip
            cursor.execute(_INSERT, values)


def _verify(*args: str) -> tuple[dict[str, Any], str, bool]:
    payload, text = StringIO(), StringIO()
    failed = False
    try:
        call_command("audit_verify", "--json", *args, stdout=payload)
    except SystemExit:
        failed = True
    with contextlib.suppress(SystemExit):  # the same verdict, as text
        call_command("audit_verify", *args, stdout=text)
    return json.loads(payload.getvalue()), text.getvalue(), failed


def _old_checkpoint(minutes: int) -> None:
    """A checkpoint of the current head, signed with the real key `minutes` ago (and none since)."""
    head = AuditEvent.objects.order_by("-seq").first()
    assert head is not None
    checkpoint = checkpoint_sign(
        private_key=_signing_key(), head_seq=head.seq, head_hash=head.hash, event_count=AuditEvent.objects.count(),
        head_created_at=format_time(head.created_at),
        created_at=format_time(timezone.now() - timedelta(minutes=minutes)),
    )  # fmt: skip
    from django.conf import settings

    checkpoint_write(checkpoint, settings.AUDIT_CHECKPOINT_DIR)


@TAMPERING
def test_audit_verify_catches_a_forged_tail_longer_than_the_limit(settings: Any) -> None:
    settings.AUDIT_UNCHECKPOINTED_MAX = 5
    write_events(4)
    checkpoint, _ = audit_checkpoint_create()
    assert checkpoint is not None
    write_events(3)  # real events the attacker wants gone
    before, _, failed = _verify()
    assert not failed and before["verified"] is True and before["events_after_checkpoint"] == 3

    forge_tail(after_seq=checkpoint.head_seq, count=8)

    assert audit_chain_verify().intact  # every hash is right...
    payload, text, failed = _verify()
    assert failed  # ...and yet audit_verify exits 1
    assert payload["intact"] is True and payload["verified"] is False  # not proven, not "tampering found"
    assert payload["events_after_checkpoint"] == 8
    reason = NOT_VERIFIED_COUNT.format(count=8, limit=5)
    assert payload["not_verified"] == [reason]
    assert f"NOT VERIFIED: {reason}" in text
    assert "Audit trail NOT VERIFIED" in text and "chain intact" not in text


@TAMPERING
def test_audit_verify_catches_a_forged_event_after_a_checkpoint_that_is_too_old(settings: Any) -> None:
    settings.AUDIT_CHECKPOINT_INTERVAL_SECONDS = 600
    write_events(3)
    _old_checkpoint(minutes=25)  # signed 25 minutes ago; the periodic ones would be at most 15 minutes old
    head = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
    assert head is not None
    forge_tail(after_seq=head, count=1)  # one event, well within the count limit

    payload, text, failed = _verify()
    assert failed
    assert payload["intact"] is True and payload["events_after_checkpoint"] == 1
    assert payload["checkpoint_age_limit_seconds"] == 1200
    assert len(payload["not_verified"]) == 1
    assert payload["not_verified"][0] == NOT_VERIFIED_AGE.format(age="25 min", limit="20 min")
    assert "NOT VERIFIED: the newest checkpoint was signed 25 min ago" in text


@TAMPERING
def test_a_forged_tail_within_both_limits_is_not_detected_but_its_size_is_reported(settings: Any) -> None:
    """The window that remains (README, Audit trail): short, young forgeries pass; the report shows the window."""
    settings.AUDIT_UNCHECKPOINTED_MAX = 5
    write_events(4)
    checkpoint, _ = audit_checkpoint_create()
    assert checkpoint is not None
    write_events(2)
    forge_tail(after_seq=checkpoint.head_seq, count=4)
    payload, text, failed = _verify()
    assert not failed and payload["verified"] is True
    assert payload["events_after_checkpoint"] == 4
    assert "Events after the newest checkpoint: 4 (limit 5)" in text


def test_without_periodic_checkpoints_only_the_count_bounds_the_tail(settings: Any, db: None) -> None:
    settings.AUDIT_CHECKPOINT_INTERVAL_SECONDS = 0
    write_events(2)
    _old_checkpoint(minutes=24 * 60)
    report = audit_trail_verify()
    assert report.checkpoint_age_limit_seconds is None
    assert report.verified, report.not_verified


def test_many_events_and_no_checkpoint_at_all_are_not_verified(settings: Any, db: None) -> None:
    write_events(3)
    settings.AUDIT_UNCHECKPOINTED_MAX = AuditEvent.objects.count() - 1
    report = audit_trail_verify()
    assert report.intact and not report.verified
    assert report.events_after_checkpoint == AuditEvent.objects.count()


# ---- checkpoints every N events, and the periodic one on a quiet day -----------------------------------------
@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Queued tasks run at once, in this process (the queueing itself, after the commit, is what is tested)."""
    from portal.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def _signed_heads(directory: Path) -> list[int]:
    public_key = load_public_key(directory.parent / "checkpoint_ed25519.pub") if directory.is_dir() else None
    return sorted(item.checkpoint.head_seq for item in checkpoint_files(directory, public_key) if item.checkpoint)


@pytest.mark.django_db(transaction=True)
def test_a_checkpoint_is_written_each_time_the_chain_crosses_a_multiple_of_n(settings: Any, eager_celery: None) -> None:
    settings.AUDIT_CHECKPOINT_EVERY_EVENTS = 5
    start = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    write_events(12)  # each in its own transaction, as separate actions are
    crossed = [seq for seq in range(start + 1, start + 13) if seq % 5 == 0]
    assert _signed_heads(settings.AUDIT_CHECKPOINT_DIR) == crossed
    report = audit_trail_verify()
    assert report.verified and report.events_after_checkpoint == start + 12 - crossed[-1] < 5


@pytest.mark.django_db(transaction=True)
def test_the_checkpoint_waits_for_the_commit_and_vanishes_with_a_rollback(settings: Any, eager_celery: None) -> None:
    settings.AUDIT_CHECKPOINT_EVERY_EVENTS = 3
    with pytest.raises(RuntimeError), transaction.atomic():
        write_events(4)
        raise RuntimeError("the action failed: its events roll back")
    assert _signed_heads(settings.AUDIT_CHECKPOINT_DIR) == []
    with transaction.atomic():
        write_events(4)
        assert _signed_heads(settings.AUDIT_CHECKPOINT_DIR) == []  # nothing signed inside the transaction
    head = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
    assert _signed_heads(settings.AUDIT_CHECKPOINT_DIR) == [head]  # one batch crossing a multiple: one checkpoint


def test_the_periodic_task_signs_an_unchanged_head_again_once_its_checkpoint_is_half_an_interval_old(
    settings: Any, db: None
) -> None:
    settings.AUDIT_CHECKPOINT_INTERVAL_SECONDS = 600
    write_events(2)
    audit_checkpoint_create()
    assert audit_checkpoint_task() == ""  # fresh: nothing to sign
    for path in settings.AUDIT_CHECKPOINT_DIR.glob("checkpoint-*"):
        path.unlink()
    _old_checkpoint(minutes=6)
    written = audit_checkpoint_task()
    assert written != ""
    report = audit_trail_verify()
    assert report.checkpoint_age_seconds is not None and report.checkpoint_age_seconds < 60
