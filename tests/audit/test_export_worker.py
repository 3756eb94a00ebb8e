"""Background audit exports on a real worker process: to a downloadable file, and again after a worker died."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.filters import AuditFilter
from audit.models import AuditEvent, AuditExport, ExportStatus
from audit.services import audit, audit_export_request
from tests.responses import streamed
from tests.workers import Workers, filesystem_broker, portal_app_on

pytestmark = pytest.mark.django_db(transaction=True)

RECOVERY = {"JOBS_STALE_AFTER_SECONDS": "5", "JOBS_SWEEP_INTERVAL_SECONDS": "1", "JOBS_MAX_REQUEUES": "20"}
FINAL = {ExportStatus.DONE, ExportStatus.FAILED}


def _write_events(count: int) -> None:
    for number in range(count):
        audit(actor=None, actor_username="system", action="test.worker_export", details={"n": number})


def _downloaded_lines(auditor: Any, export: AuditExport) -> list[dict[str, Any]]:
    client = Client()
    client.force_login(auditor)
    response = client.get(reverse("audit:export_download", args=[export.pk]))
    assert response.status_code == 200
    return [json.loads(line) for line in streamed(response).decode().splitlines()]


def _status(export: AuditExport) -> str:
    return str(AuditExport.objects.values_list("status", flat=True).get(pk=export.pk))


def test_a_background_export_is_written_by_a_real_worker_and_downloadable(workers: Workers, audrey: Any) -> None:
    _write_events(5)
    export = audit_export_request(
        actor=audrey, audit_filter=AuditFilter(action="test.worker_export"), export_format="jsonl"
    )
    workers.start()
    workers.wait_for("the export to finish", lambda: _status(export) in FINAL)
    export.refresh_from_db()
    assert export.status == ExportStatus.DONE, export.error
    lines = _downloaded_lines(audrey, export)
    assert [line["details"]["n"] for line in lines] == list(range(5))
    assert AuditEvent.objects.filter(action="audit.export_completed", object_id=str(export.pk)).count() == 1


def test_an_export_whose_worker_died_is_written_by_the_next_workers_sweep(
    workers: Workers, audrey: Any, tmp_path: Any
) -> None:
    _write_events(3)
    # The dead worker: it fetched the message (the embedded broker then holds nothing), marked the export
    # running, and stopped renewing the heartbeat a while ago.
    with portal_app_on(filesystem_broker(tmp_path / "dead-workers-broker")):
        export = audit_export_request(
            actor=audrey, audit_filter=AuditFilter(action="test.worker_export"), export_format="jsonl"
        )
    AuditExport.objects.filter(pk=export.pk).update(
        status=ExportStatus.RUNNING, heartbeat_at=timezone.now() - dt.timedelta(minutes=10)
    )
    workers.start(beat=True, **RECOVERY)
    workers.wait_for("the export to finish", lambda: _status(export) in FINAL)
    export.refresh_from_db()
    assert export.status == ExportStatus.DONE and export.requeues >= 1, export.error
    assert [line["details"]["n"] for line in _downloaded_lines(audrey, export)] == list(range(3))
    requeued = AuditEvent.objects.filter(action="audit.export_requeued", object_id=str(export.pk))
    first_requeue = requeued.first()
    assert first_requeue is not None and first_requeue.actor_username == "system"
    assert AuditEvent.objects.filter(action="audit.export_completed", object_id=str(export.pk)).count() == 1
