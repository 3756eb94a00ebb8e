"""The sweep that queues again the audit exports whose worker died (audit.services.audit_exports_requeue_stalled)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from audit.models import AuditEvent, AuditExport, ExportStatus
from audit.services import audit_export_run, audit_exports_requeue_stalled
from portal.core import jobs

pytestmark = pytest.mark.django_db


def _export(audrey: Any, status: str, heartbeat_age: dt.timedelta, **fields: Any) -> AuditExport:
    return AuditExport.objects.create(
        requested_by=audrey, export_format="jsonl", up_to_seq=0, status=status,
        heartbeat_at=timezone.now() - heartbeat_age, **fields,
    )  # fmt: skip


def test_a_running_export_without_a_heartbeat_is_queued_again(
    audrey: Any, settings: Any, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    from audit.tasks import audit_export_task

    settings.JOBS_STALE_AFTER_SECONDS = 60
    dead = _export(audrey, ExportStatus.RUNNING, dt.timedelta(minutes=2))
    _export(audrey, ExportStatus.RUNNING, dt.timedelta(seconds=10))  # alive
    _export(audrey, ExportStatus.DONE, dt.timedelta(hours=1))
    _export(audrey, ExportStatus.QUEUED, dt.timedelta(hours=1))
    queued: list[int] = []
    monkeypatch.setattr(audit_export_task, "delay", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        assert audit_exports_requeue_stalled() == [dead.pk]
    assert queued == [dead.pk]
    dead.refresh_from_db()
    assert dead.requeues == 1 and dead.status == ExportStatus.RUNNING
    event = AuditEvent.objects.get(action="audit.export_requeued")
    assert event.object_id == str(dead.pk) and event.details == {"requeues": 1}
    assert audit_exports_requeue_stalled() == []  # its lease was renewed
    # the requeued attempt writes it
    assert audit_export_run(export_id=dead.pk).status == ExportStatus.DONE


def test_an_export_interrupted_too_often_fails(audrey: Any, settings: Any) -> None:
    settings.JOBS_STALE_AFTER_SECONDS = 60
    settings.JOBS_MAX_REQUEUES = 1
    export = _export(audrey, ExportStatus.RUNNING, dt.timedelta(minutes=2), requeues=1)
    assert audit_exports_requeue_stalled() == []
    export.refresh_from_db()
    assert export.status == ExportStatus.FAILED and export.error == jobs.ERROR_INTERRUPTED.format(count=1)
    assert AuditEvent.objects.filter(action="audit.export_failed", object_id=str(export.pk)).exists()
    assert audit_export_run(export_id=export.pk).status == ExportStatus.FAILED  # a late message does not revive it


def test_when_two_attempts_finish_the_first_ones_file_is_kept(
    audrey: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audit import services

    export = _export(audrey, ExportStatus.RUNNING, dt.timedelta(0))
    first = audit_export_run(export_id=export.pk)
    # the second attempt had claimed the export before the first one finished
    AuditExport.objects.filter(pk=export.pk).update(status=ExportStatus.RUNNING)
    claimed = services._export_claim(export.pk)
    assert claimed is not None
    AuditExport.objects.filter(pk=export.pk).update(status=ExportStatus.DONE, file_name=first.file_name)
    # ...and reaches the end after it: it keeps the first file and removes its own
    monkeypatch.setattr(services, "_export_claim", lambda export_id: claimed)
    second = audit_export_run(export_id=export.pk)
    assert second.file_name == first.file_name
    assert sorted(path.name for path in settings.AUDIT_EXPORT_DIR.iterdir()) == [first.file_name]
    assert AuditEvent.objects.filter(action="audit.export_completed", object_id=str(export.pk)).count() == 1
