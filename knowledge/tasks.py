"""Celery tasks of the knowledge app: they take ids and call services."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from celery import shared_task

from knowledge import services
from portal.core.jobs import Heartbeat

if TYPE_CHECKING:
    from celery import Task

logger = logging.getLogger(__name__)
MAX_RETRIES = 3


@shared_task(bind=True, name="knowledge.document_process", max_retries=MAX_RETRIES, acks_late=True)
def document_process_task(self: Task[[int, int], str], document_id: int, generation: int) -> str:
    """Ingest one generation of a document. Safe to run twice: see services.document_process."""
    try:
        with Heartbeat(lambda: services.document_heartbeat(document_id=document_id, generation=generation)):
            return services.document_process(document_id=document_id, generation=generation)
    except Exception as error:
        # A bug or a database hiccup: retry a few times, then tell the uploader; the worker lives on.
        logger.exception("knowledge: processing document %s failed", document_id)
        if self.request.retries < MAX_RETRIES and not self.request.is_eager:
            raise self.retry(exc=error, countdown=5 * (self.request.retries + 1)) from error
        services._document_fail(document_id, generation, services.ERROR_INTERNAL.format(error=type(error).__name__))
        return "failed"


@shared_task(name="knowledge.documents_requeue_stalled")
def documents_requeue_stalled_task() -> list[int]:
    """Periodic (Celery beat): queue again the documents whose worker died mid-ingestion."""
    return services.documents_requeue_stalled()
