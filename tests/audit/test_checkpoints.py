from __future__ import annotations

import json
import stat
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audit.checkpoints import checkpoint_files, load_public_key
from audit.models import AuditEvent
from audit.selectors import audit_chain_verify, audit_trail_verify
from audit.services import audit_checkpoint_create
from audit.tasks import audit_checkpoint_task
from tests.audit.factories import TAMPERING, rewrite_chain_from, superuser_sql, write_events

pytestmark = pytest.mark.django_db


def _verify_json(*args: str) -> tuple[dict[str, Any], bool]:
    out = StringIO()
    try:
        call_command("audit_verify", "--json", *args, stdout=out)
        failed = False
    except SystemExit as exit_:
        assert exit_.code == 1, exit_.code  # audit_verify's "not intact", not an argument error (2)
        failed = True
    return json.loads(out.getvalue()), failed


def test_a_checkpoint_signs_the_current_head_with_a_key_kept_outside_the_database(settings: Any) -> None:
    events = write_events(3)
    checkpoint, path = audit_checkpoint_create()
    assert checkpoint is not None and path is not None
    assert checkpoint.head_seq == events[-1].seq
    assert checkpoint.head_hash == events[-1].hash
    assert checkpoint.event_count == AuditEvent.objects.count()
    assert path.parent == settings.AUDIT_CHECKPOINT_DIR
    key_mode = stat.S_IMODE(settings.AUDIT_CHECKPOINT_KEY_PATH.stat().st_mode)
    assert key_mode == 0o600
    public_key = load_public_key(settings.AUDIT_CHECKPOINT_PUBLIC_KEY_PATH)
    (found,) = checkpoint_files(settings.AUDIT_CHECKPOINT_DIR, public_key)
    assert found.checkpoint == checkpoint


def test_an_unchanged_head_is_not_signed_twice() -> None:
    write_events(2)
    assert audit_checkpoint_create()[1] is not None
    assert audit_checkpoint_create()[1] is None
    assert audit_checkpoint_create(force=True)[1] is not None
    write_events(1)
    assert audit_checkpoint_task() != ""


def test_a_key_given_in_the_environment_is_used(settings: Any, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    settings.AUDIT_CHECKPOINT_KEY = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    write_events(1)
    audit_checkpoint_create()
    assert not settings.AUDIT_CHECKPOINT_KEY_PATH.exists()
    report = audit_trail_verify()
    assert report.intact and report.checkpoints_valid == 1


def test_an_untouched_trail_with_checkpoints_raises_no_alarm() -> None:
    write_events(3)
    audit_checkpoint_create()
    write_events(2)
    audit_checkpoint_create()
    write_events(1)  # newer than the last checkpoint: fine
    payload, failed = _verify_json()
    assert not failed
    assert payload["intact"] is True
    assert payload["events_valid"] == payload["events_total"] == AuditEvent.objects.count()
    assert payload["checkpoints_valid"] == payload["checkpoints_total"] == 2
    assert payload["tail_deleted"] is False


@TAMPERING
def test_deleting_the_newest_events_is_detected_through_the_checkpoint() -> None:
    events = write_events(6)
    audit_checkpoint_create()
    superuser_sql("DELETE FROM audit_auditevent WHERE seq > %s", [events[3].seq])
    assert audit_chain_verify().intact  # the chain alone cannot tell: that is what checkpoints are for
    payload, failed = _verify_json()
    assert failed
    assert payload["tail_deleted"] is True
    assert payload["events_valid"] == payload["events_total"]
    assert "deleted from the end" in payload["first_invalid_checkpoint"]["reason"]


@TAMPERING
def test_truncating_the_tail_and_writing_new_events_is_detected() -> None:
    events = write_events(5)
    audit_checkpoint_create()
    superuser_sql("DELETE FROM audit_auditevent WHERE seq > %s", [events[1].seq])
    write_events(3, action="test.replacement")  # same positions, different history
    report = audit_trail_verify()
    assert report.chain.intact
    assert not report.intact
    assert report.first_invalid_checkpoint is not None
    assert "rewritten" in report.first_invalid_checkpoint.problem


@TAMPERING
def test_rewriting_the_chain_with_recomputed_hashes_is_detected() -> None:
    events = write_events(5)
    audit_checkpoint_create()
    rewrite_chain_from(events[1].seq)
    assert audit_chain_verify().intact  # every hash was recomputed...
    report = audit_trail_verify()
    assert not report.intact  # ...but the signed head no longer matches
    assert report.first_invalid_checkpoint is not None


@TAMPERING
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditevent SET details = '{\"n\": 42}' WHERE seq = %(seq)s",
        "DELETE FROM audit_auditevent WHERE seq = %(seq)s",
        "UPDATE audit_auditevent SET seq = seq + 1000 WHERE seq = %(seq)s",
    ],
    ids=["alter", "delete", "move"],
)
def test_tampering_before_a_checkpoint_invalidates_the_event_and_the_checkpoint(sql: str) -> None:
    events = write_events(5)
    audit_checkpoint_create()
    superuser_sql(sql, {"seq": events[2].seq})
    payload, failed = _verify_json()
    assert failed
    assert payload["first_invalid_event"] is not None
    assert events[2].seq <= payload["first_invalid_event"]["seq"] <= events[3].seq
    assert payload["checkpoints_valid"] == 0


def test_an_altered_checkpoint_file_is_invalid(settings: Any) -> None:
    write_events(3)
    _, path = audit_checkpoint_create()
    assert path is not None
    data = json.loads(path.read_text())
    data["event_count"] += 1
    path.write_text(json.dumps(data))
    report = audit_trail_verify()
    assert not report.intact
    assert report.first_invalid_checkpoint is not None
    assert "signature" in report.first_invalid_checkpoint.problem


def test_a_checkpoint_signed_with_another_key_is_invalid(settings: Any, tmp_path: Path) -> None:
    write_events(2)
    audit_checkpoint_create()
    # an attacker replaces the key pair and signs their own checkpoint; verifiers pin the original public key
    pinned = tmp_path / "pinned.pub"
    pinned.write_bytes(settings.AUDIT_CHECKPOINT_PUBLIC_KEY_PATH.read_bytes())
    settings.AUDIT_CHECKPOINT_KEY_PATH.unlink()
    write_events(1)
    audit_checkpoint_create()
    payload, failed = _verify_json("--public-key", str(pinned))
    assert failed
    assert payload["checkpoints_valid"] == 1
    assert "another key" in payload["first_invalid_checkpoint"]["reason"]


@TAMPERING
def test_the_text_report_reads_like_cloudtrail_validate_logs() -> None:
    events = write_events(4)
    audit_checkpoint_create()
    out = StringIO()
    call_command("audit_verify", stdout=out)
    text = out.getvalue()
    assert f"{AuditEvent.objects.count()}/{AuditEvent.objects.count()} events valid" in text
    assert "1/1 checkpoints valid" in text
    assert "Events deleted from the end: none detected" in text
    superuser_sql("DELETE FROM audit_auditevent WHERE seq >= %s", [events[2].seq])
    out = StringIO()
    with pytest.raises(SystemExit, check=lambda exit_: exit_.code == 1):
        call_command("audit_verify", stdout=out)
    text = out.getvalue()
    assert "0/1 checkpoints valid" in text
    assert "Events deleted from the end: YES" in text
    assert "Audit trail NOT intact" in text


def test_the_checkpoint_command_writes_a_file(tmp_path: Path) -> None:
    write_events(1)
    out = StringIO()
    call_command("audit_checkpoint", "--json", "--dir", str(tmp_path / "elsewhere"), stdout=out)
    payload = json.loads(out.getvalue())
    assert payload["written"] is True
    assert Path(payload["file"]).parent == tmp_path / "elsewhere"


# ---- properties: any change to a signed checkpoint, or to an exported event, is caught ---------------
def _signed(head_seq: int) -> tuple[Any, Any]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from audit.checkpoints import checkpoint_sign

    key = Ed25519PrivateKey.generate()
    checkpoint = checkpoint_sign(
        private_key=key, head_seq=head_seq, head_hash="a" * 64, event_count=head_seq,
        head_created_at="2026-01-01T00:00:00.000000Z", created_at="2026-01-01T00:10:00.000000Z",
    )  # fmt: skip
    return checkpoint, key.public_key()


@given(st.integers(1, 10**9), st.sampled_from(["head_seq", "head_hash", "event_count", "created_at"]), st.data())
@hypothesis_settings(max_examples=40, deadline=None)
def test_any_change_to_a_signed_checkpoint_breaks_its_signature(head_seq: int, name: str, data: Any) -> None:
    from audit.checkpoints import CheckpointInvalid, checkpoint_parse

    checkpoint, public_key = _signed(head_seq)
    assert checkpoint_parse(checkpoint.to_json(), public_key) == checkpoint
    payload = json.loads(checkpoint.to_json())
    replacement = data.draw(st.integers(0, 10**9) if name in ("head_seq", "event_count") else st.text(min_size=1))
    if payload[name] == replacement:
        return
    payload[name] = replacement
    with pytest.raises(CheckpointInvalid):
        checkpoint_parse(json.dumps(payload), public_key)


def test_periodic_checkpoints_are_scheduled_with_celery_beat(settings: Any) -> None:
    from portal.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["audit-checkpoint"]
    assert entry["task"] == "audit.checkpoint"
    assert entry["schedule"] == float(settings.AUDIT_CHECKPOINT_INTERVAL_SECONDS)
    app.loader.import_default_modules()
    assert "audit.checkpoint" in app.tasks
