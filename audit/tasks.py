from __future__ import annotations

from celery import shared_task

from audit.services import audit_checkpoint_create, audit_export_expire, audit_export_run


@shared_task(name="audit.checkpoint")
def audit_checkpoint_task() -> str:
    """Periodic (Celery beat): sign the chain head. Idempotent: an unchanged head is not signed again."""
    _, path = audit_checkpoint_create()
    return str(path or "")


@shared_task(name="audit.export")
def audit_export_task(export_id: int) -> None:
    audit_export_run(export_id=export_id)


@shared_task(name="audit.export_expire")
def audit_export_expire_task() -> int:
    return audit_export_expire()
