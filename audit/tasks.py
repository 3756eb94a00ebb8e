from __future__ import annotations

from celery import shared_task
from django.conf import settings

from audit.services import (
    audit_checkpoint_create,
    audit_export_expire,
    audit_export_heartbeat,
    audit_export_run,
    audit_exports_requeue_stalled,
    audit_verification_run,
)
from portal.core.jobs import Heartbeat


@shared_task(name="audit.checkpoint")
def audit_checkpoint_task() -> str:
    """Sign the chain head: periodically (Celery beat) and every AUDIT_CHECKPOINT_EVERY_EVENTS events.

    An unchanged head is signed again once its checkpoint is half an interval old, so the newest checkpoint
    stays younger than the bound audit_verify holds it to (twice the interval) while beat runs.
    """
    interval = settings.AUDIT_CHECKPOINT_INTERVAL_SECONDS
    _, path = audit_checkpoint_create(refresh_after_seconds=interval / 2 if interval > 0 else None)
    return str(path or "")


@shared_task(name="audit.export")
def audit_export_task(export_id: int) -> None:
    with Heartbeat(lambda: audit_export_heartbeat(export_id=export_id)):
        audit_export_run(export_id=export_id)


@shared_task(name="audit.exports_requeue_stalled")
def audit_exports_requeue_stalled_task() -> list[int]:
    """Periodic (Celery beat): queue again the exports whose worker died while writing them."""
    return audit_exports_requeue_stalled()


@shared_task(name="audit.export_expire")
def audit_export_expire_task() -> int:
    return audit_export_expire()


@shared_task(name="audit.verify")
def audit_verify_task(verification_id: int) -> str:
    """Walk the chain for a verification asked for from the browser (the `audit_verify` command's check)."""
    return str(audit_verification_run(verification_id=verification_id).status)
