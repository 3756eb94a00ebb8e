from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(name="retention.run")
def retention_run_task(trigger: str = "schedule", actor_id: int | None = None) -> dict[str, Any]:
    """Periodic (Celery beat, every RETENTION_INTERVAL_SECONDS) or started by an officer: delete what is due."""
    from django.contrib.auth.models import User

    from portal.retention.services import retention_run

    actor = User.objects.filter(pk=actor_id).first() if actor_id else None
    run = retention_run(trigger=trigger, actor=actor)
    return {"run": run.pk if run else None, "deleted": run.deleted if run else {}}
