from __future__ import annotations

from celery import shared_task


@shared_task(name="subjects.run")
def subject_request_task(request_id: int) -> str:
    """Write an access bundle or carry out an erasure; queued on commit by subject_request_create."""
    from portal.subjects.services import subject_request_run

    return str(subject_request_run(request_id=request_id).status)


@shared_task(name="subjects.fail_stalled")
def subject_requests_fail_stalled_task() -> int:
    """Periodic (Celery beat, every JOBS_SWEEP_INTERVAL_SECONDS): requests whose worker died end failed."""
    from portal.subjects.services import subject_requests_fail_stalled

    return subject_requests_fail_stalled()


@shared_task(name="subjects.expire_bundles")
def subject_bundles_expire_task() -> int:
    """Periodic (Celery beat, hourly): delete the access bundles older than SUBJECT_BUNDLE_RETENTION_HOURS."""
    from portal.subjects.services import subject_bundles_expire

    return subject_bundles_expire()
