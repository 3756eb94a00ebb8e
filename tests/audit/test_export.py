from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client
from django.urls import reverse

from audit.chain import verify_events
from audit.exports import neutralise_cell
from audit.models import AuditEvent, AuditExport, ExportStatus, Outcome
from audit.services import audit, audit_checkpoint_create, audit_export_run
from tests.audit.factories import TAMPERING, superuser_sql, write_events
from tests.responses import streamed, streaming

pytestmark = pytest.mark.django_db
REPO_ROOT = Path(__file__).resolve().parents[2]


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _body(response: Any) -> str:
    return b"".join(response.streaming_content).decode("utf-8")


def test_csv_export_matches_the_filter_and_is_audited(audrey: Any, sam: Any) -> None:
    wanted = [audit(actor=sam, action="test.wanted", details={"i": i}) for i in range(3)]
    audit(actor=sam, action="test.other")
    response = _client(audrey).get(reverse("audit:export_csv"), {"action": "test.wanted"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(_body(response))))
    assert [int(row["seq"]) for row in rows] == [event.seq for event in wanted]
    assert {row["action"] for row in rows} == {"test.wanted"}
    assert rows[0]["hash"] == wanted[0].hash
    record = AuditEvent.objects.filter(action="audit.exported").latest("seq")
    assert record.actor_username == "audrey"
    assert record.details["filter"] == {"action": "test.wanted"}
    assert record.details["count"] == 3
    assert record.details["format"] == "csv"


def test_a_jsonl_export_of_everything_is_a_verifiable_chain(audrey: Any) -> None:
    write_events(5)
    response = _client(audrey).get(reverse("audit:export_jsonl"))
    lines = [json.loads(line) for line in _body(response).splitlines()]
    # everything up to the head at the time of the request; the export's own event comes right after
    record = AuditEvent.objects.get(action="audit.exported")
    assert record.details["count"] == len(lines)
    assert record.details["up_to_seq"] == lines[-1]["seq"] == record.seq - 1
    report = verify_events(lines)
    assert report.intact and report.checked == AuditEvent.objects.count() - 1


def test_csv_cells_that_could_run_as_formulas_are_neutralised(audrey: Any) -> None:
    for dangerous in ('=HYPERLINK("http://x")', "+1+1", "-2", "@SUM(A1)", "\tTAB", "\rCR"):
        assert neutralise_cell(dangerous) == "'" + dangerous
    assert neutralise_cell("plain") == "plain"
    audit(actor=None, actor_username="=cmd|' /C calc'!A0", action="auth.login_failed", outcome=Outcome.FAILURE)
    body = _body(_client(audrey).get(reverse("audit:export_csv"), {"action": "auth.login_failed"}))
    (row,) = list(csv.DictReader(io.StringIO(body)))
    assert row["actor_username"] == "'=cmd|' /C calc'!A0"
    assert not any(value.startswith(("=", "+", "-", "@")) for value in row.values())


def test_exports_are_streamed_also_under_asgi(audrey: Any) -> None:
    write_events(3, action="test.async")
    client = AsyncClient()
    client.force_login(audrey)
    response = async_to_sync(client.get)(reverse("audit:export_jsonl"), {"action": "test.async"})
    assert response.status_code == 200
    assert streaming(response).is_async

    async def collect() -> bytes:
        return b"".join([part async for part in streaming(response)])

    lines = async_to_sync(collect)().decode().splitlines()
    assert [json.loads(line)["action"] for line in lines] == ["test.async"] * 3


def test_a_bad_filter_is_rejected_before_anything_is_exported(audrey: Any) -> None:
    client = _client(audrey)
    before = AuditEvent.objects.count()
    response = client.get(reverse("audit:export_csv"), {"start": "not a date"})
    assert response.status_code == 400
    assert AuditEvent.objects.count() == before


def test_a_background_export_reports_progress_and_is_private(
    audrey: Any, alice: Any, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    from audit import tasks

    queued: list[int] = []
    monkeypatch.setattr(tasks.audit_export_task, "delay", lambda export_id: queued.append(export_id))
    write_events(4, action="test.background")
    client = _client(audrey)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("audit:export_request") + "?action=test.background", {"export_format": "jsonl"})
    export = AuditExport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("audit:export_status", args=[export.pk])
    assert queued == [export.pk]
    assert export.total == 4 and export.status == ExportStatus.QUEUED
    requested = AuditEvent.objects.filter(action="audit.exported").latest("seq")
    assert requested.details["background"] is True and requested.details["count"] == 4

    polling = client.get(reverse("audit:export_status", args=[export.pk]), HTTP_HX_REQUEST="true")
    assert b'hx-trigger="every 1s"' in polling.content
    assert b"<html" not in polling.content

    audit_export_run(export_id=export.pk)
    export.refresh_from_db()
    assert export.status == ExportStatus.DONE and export.done == 4
    done = client.get(reverse("audit:export_status", args=[export.pk]), HTTP_HX_REQUEST="true")
    assert b"every 1s" not in done.content
    assert reverse("audit:export_download", args=[export.pk]).encode() in done.content
    download = client.get(reverse("audit:export_download", args=[export.pk]))
    lines = streamed(download).decode().splitlines()
    assert [json.loads(line)["action"] for line in lines] == ["test.background"] * 4
    assert AuditEvent.objects.filter(action="audit.export_completed", object_id=str(export.pk)).exists()
    # another auditor (or administrator) cannot see or fetch it
    other = _client(alice)
    assert other.get(reverse("audit:export_status", args=[export.pk])).status_code == 404
    assert other.get(reverse("audit:export_download", args=[export.pk])).status_code == 404
    assert audit_export_run(export_id=export.pk).status == ExportStatus.DONE  # idempotent


def test_the_export_list_shows_only_my_exports(audrey: Any, alice: Any) -> None:
    AuditExport.objects.create(requested_by=alice, export_format="csv", up_to_seq=1)
    mine = AuditExport.objects.create(requested_by=audrey, export_format="jsonl", up_to_seq=1)
    response = _client(audrey).get(reverse("audit:export_list"))
    assert [export.pk for export in response.context["exports"]] == [mine.pk]


def _export_file(client: Client, tmp_path: Path, **params: str) -> Path:
    path = tmp_path / "export.jsonl"
    path.write_bytes(streamed(client.get(reverse("audit:export_jsonl"), params)))
    return path


def _run_offline(*args: str) -> subprocess.CompletedProcess[str]:
    # a bare interpreter, no Django settings: what an external auditor would run
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "audit" / "verify_export.py"), *args, "--json"],
        capture_output=True, text=True, cwd="/", check=False, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def test_a_jsonl_export_verifies_offline_against_signed_checkpoints(audrey: Any, settings: Any, tmp_path: Path) -> None:
    write_events(4)
    audit_checkpoint_create()
    path = _export_file(_client(audrey), tmp_path)
    result = _run_offline(
        str(path), "--checkpoints", str(settings.AUDIT_CHECKPOINT_DIR),
        "--public-key", str(settings.AUDIT_CHECKPOINT_PUBLIC_KEY_PATH),
    )  # fmt: skip
    report = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["starts_at_genesis"] is True
    assert report["checkpoints_matched"] == report["checkpoints_checked"] == 1

    lines = path.read_text().splitlines()
    forged = json.loads(lines[2])
    forged["actor_username"] = "someone else"
    lines[2] = json.dumps(forged)
    path.write_text("\n".join(lines) + "\n")
    result = _run_offline(str(path))
    assert result.returncode == 1
    assert json.loads(result.stdout)["first_invalid"]["line"] == 3


@TAMPERING
def test_a_filtered_export_verifies_line_by_line_and_against_the_database(audrey: Any, tmp_path: Path) -> None:
    write_events(3, action="test.a")
    write_events(3, action="test.b")
    path = _export_file(_client(audrey), tmp_path, action="test.b")
    result = _run_offline(str(path))
    assert result.returncode == 0, result.stdout
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("audit_verify", "--jsonl", str(path), stdout=out)
    assert "3/3 events valid" in out.getvalue()
    assert "3 events match the database" in out.getvalue()
    first = json.loads(path.read_text().splitlines()[0])
    superuser_sql("UPDATE audit_auditevent SET details = '{}' WHERE seq = %s", [first["seq"]])
    superuser_sql("UPDATE audit_auditevent SET hash = repeat('f', 64) WHERE seq = %s", [first["seq"]])
    with pytest.raises(SystemExit, check=lambda exit_: exit_.code == 1):
        call_command("audit_verify", "--jsonl", str(path), stdout=StringIO())


def test_a_background_export_needs_a_known_format(audrey: Any) -> None:
    response = _client(audrey).post(reverse("audit:export_request"), {"export_format": "xlsx"})
    assert response.status_code == 400
    assert not AuditExport.objects.exists()
