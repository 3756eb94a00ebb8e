"""Celery tasks of workflows: they take ids, call the engine or a service, and are safe to run twice."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from portal.workflows import engine, services


@shared_task(name="workflows.run_advance", acks_late=True)
def run_advance_task(run_id: int, seq: int) -> str:
    """One step of a run; a message for an outdated seq does nothing (see portal.workflows.engine)."""
    return engine.run_advance(run_id=run_id, seq=seq)


@shared_task(name="workflows.runs_requeue_stalled")
def runs_requeue_stalled_task() -> list[int]:
    """Periodic (beat): queue again the runs whose worker died mid-step."""
    return services.runs_requeue_stalled()


@shared_task(name="workflows.schedules_fire")
def schedules_fire_task() -> list[int]:
    """Periodic (beat, every minute): start the runs of schedules that are due."""
    return services.schedules_fire()


@shared_task(name="workflows.approvals_expire")
def approvals_expire_task() -> list[int]:
    """Periodic (beat): decide approvals whose deadline passed."""
    return services.approvals_expire()


@shared_task(name="workflows.event_dispatch", acks_late=True)
def event_dispatch_task(event: str, payload: dict[str, Any]) -> list[int]:
    return services.event_dispatch(event=event, payload=payload)


def event_queue(event: str, **payload: int) -> None:
    """Hook target of the other apps' events (already after their commit): only queues work."""
    event_dispatch_task.delay(event, payload)
