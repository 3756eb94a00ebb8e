"""The sweep that queues again the documents whose worker died (knowledge.services.documents_requeue_stalled)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from knowledge import services
from knowledge.models import Chunk, Document, DocumentStatus
from portal.core import jobs
from tests.knowledge.factories import KnowledgeBaseFactory

pytestmark = pytest.mark.django_db

HANDBOOK = b"# Handbook\n\n## Leave\n\nEmployees have 24 days of annual leave.\n"


def _processing(heartbeat_age: dt.timedelta | None, **fields: Any) -> Document:
    document = services.document_upload(
        actor=None, knowledge_base=KnowledgeBaseFactory.create(), filename="handbook.md", data=HANDBOOK
    ).stored
    heartbeat = None if heartbeat_age is None else timezone.now() - heartbeat_age
    Document.objects.filter(pk=document.pk).update(status=DocumentStatus.PROCESSING, heartbeat_at=heartbeat, **fields)
    document.refresh_from_db()
    return document


def test_a_processing_document_without_a_heartbeat_is_queued_again_and_audited(
    settings: Any, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from knowledge.tasks import document_process_task

    settings.JOBS_STALE_AFTER_SECONDS = 60
    dead = _processing(dt.timedelta(seconds=61))
    queued: list[tuple[int, int]] = []
    monkeypatch.setattr(document_process_task, "delay", lambda *args: queued.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.documents_requeue_stalled() == [dead.pk]
    assert queued == [(dead.pk, dead.generation)]  # the same generation: the new attempt resumes it
    dead.refresh_from_db()
    assert dead.status == DocumentStatus.PROCESSING and dead.requeues == 1
    assert dead.heartbeat_at is not None
    assert timezone.now() - dead.heartbeat_at < dt.timedelta(seconds=30)  # a full lease before the next look
    event = AuditEvent.objects.get(action="knowledge.document_requeued")
    assert event.object_id == str(dead.pk) and event.actor_username == "system"
    assert event.details == {"version": 1, "generation": dead.generation, "requeues": 1}
    assert services.documents_requeue_stalled() == []  # its lease was renewed


def test_a_live_slow_job_and_documents_not_processing_are_left_alone(settings: Any) -> None:
    settings.JOBS_STALE_AFTER_SECONDS = 60
    _processing(dt.timedelta(seconds=30))  # slow but renewing its heartbeat
    queued = _processing(dt.timedelta(hours=1))
    Document.objects.filter(pk=queued.pk).update(status=DocumentStatus.QUEUED)
    ready = _processing(dt.timedelta(hours=1))
    Document.objects.filter(pk=ready.pk).update(status=DocumentStatus.READY)
    assert services.documents_requeue_stalled() == []
    assert not AuditEvent.objects.filter(action="knowledge.document_requeued").exists()


def test_a_document_from_before_heartbeats_counts_from_its_last_change(settings: Any) -> None:
    settings.JOBS_STALE_AFTER_SECONDS = 60
    old = _processing(None, updated_at=timezone.now() - dt.timedelta(hours=2))
    _processing(None)  # changed just now
    assert services.documents_requeue_stalled() == [old.pk]


def test_a_document_that_keeps_killing_its_worker_fails_instead_of_looping(settings: Any) -> None:
    settings.JOBS_STALE_AFTER_SECONDS = 60
    settings.JOBS_MAX_REQUEUES = 2
    document = _processing(dt.timedelta(minutes=5), requeues=2)
    Chunk.objects.create(
        document=document, knowledge_base=document.knowledge_base, generation=document.generation, position=0,
        text="half", embedding=[0.1] * 384,
    )  # fmt: skip
    assert services.documents_requeue_stalled() == []
    document.refresh_from_db()
    assert document.status == DocumentStatus.FAILED
    assert document.error == jobs.ERROR_INTERRUPTED.format(count=2)
    assert not Chunk.objects.filter(document=document).exists()  # the abandoned attempt's chunks are gone
    assert AuditEvent.objects.filter(action="knowledge.document_failed", object_id=str(document.pk)).exists()
    # a late message of that attempt does not bring it back; Re-process starts a new generation
    assert services.document_process(document_id=document.pk, generation=document.generation) == "skipped"


def test_the_claim_stamps_the_heartbeat_and_a_second_activation_is_skipped() -> None:
    document = services.document_upload(
        actor=None, knowledge_base=KnowledgeBaseFactory.create(), filename="handbook.md", data=HANDBOOK
    ).stored
    assert services.document_process(document_id=document.pk, generation=document.generation) == "ready"
    document.refresh_from_db()
    assert document.heartbeat_at is not None
    # an old attempt that was only slow reaches the activation after the requeued one did
    assert services.document_activate(document_id=document.pk, generation=document.generation) == "skipped"
    assert AuditEvent.objects.filter(action="knowledge.document_ready", object_id=str(document.pk)).count() == 1
