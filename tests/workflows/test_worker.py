"""Runs on real Celery worker processes: a worker killed with -9 in the middle of a model step, and the run
finishing on the next worker (its beat sweep finds the stalled run) with no step done twice; an approval given
in between moves the run on through the broker."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from audit.models import AuditEvent
from portal.customers.models import Interaction
from portal.memory.models import MemoryItem
from portal.workflows import selectors, services
from portal.workflows.models import Run, Status, StepRun
from tests.customers.factories import CustomerFactory
from tests.routing.factories import CatalogModelFactory
from tests.workers import Workers
from tests.workflows.helpers import grant_run, publish

pytestmark = pytest.mark.django_db(transaction=True)

FAKE_KEY = "sk-fake-workflow-worker-key-0123456789"
# A short lease so the test does not wait minutes for the sweep; while the new worker starts (seconds on a loaded
# machine) the sweep queues the run again every lease, so the requeue limit is raised above what that start takes.
LEASE = {
    "JOBS_STALE_AFTER_SECONDS": "2",
    "JOBS_SWEEP_INTERVAL_SECONDS": "1",
    "JOBS_MAX_REQUEUES": "50",
    "FAKE_PROVIDER_KEY": FAKE_KEY,
}


def _definition(customer_id: int) -> dict[str, Any]:
    return {
        "name": "Crash test",
        "steps": [
            {"id": "before", "kind": "interaction", "customer": str(customer_id), "summary": "Before the model step"},
            {"id": "summary", "kind": "ask", "prompt": "Summarise the week in one sentence.", "task_type": "summarize"},
            {"id": "approve", "kind": "approval", "approver": {"role": "Administrator"}},
            {"id": "remember", "kind": "memory", "text": "Crash test said: {{ steps.summary.text }}"},
            {
                "id": "after",
                "kind": "interaction",
                "customer": str(customer_id),
                "summary": "After the approval",
                "full_text": "{{ steps.summary.text }}",
            },
        ],
    }


def test_a_run_survives_kill_9_mid_step_with_no_step_done_twice(
    workers: Workers, alice: Any, sam: Any, fake_provider: Any
):
    CatalogModelFactory.create(
        display_name="Fake standard", api_base=fake_provider.url, tier="standard", timeout_seconds=120
    )
    fake_provider.answer_with("The week was calm and every invoice was paid on time.")
    fake_provider.hold_stream(after_words=3)
    customer = CustomerFactory.create(name="Crash Customer")
    workflow = publish(alice, _definition(customer.pk))
    grant_run(workflow, sam)
    first = workers.start(beat=False, **LEASE)
    run = services.run_start(actor=sam, workflow=workflow, inputs={})

    workers.wait_for(
        "the model step to start",
        lambda: StepRun.objects.filter(run=run, key="summary", status=Status.RUNNING).exists(),
    )
    fake_provider.wait_until_held()
    first.kill()  # kill -9 of the worker and its pool child while the answer is streaming
    fake_provider.release()
    workers.start(beat=True, **LEASE)

    waiting = workers.wait_for("the approval", lambda: selectors.approvals_for_user(user=alice).filter(run=run).first())
    assert StepRun.objects.get(run=run, key="summary").attempts == 2
    services.approval_decide(actor=alice, step_run=waiting, approve=True)  # queued to the worker after commit
    done = workers.wait_for(
        "the run to finish", lambda: Run.objects.filter(pk=run.pk, status__in=[Status.DONE, Status.FAILED]).first()
    )

    assert done.status == Status.DONE, done.error
    steps = list(StepRun.objects.filter(run=run).order_by("position"))
    assert [(step.key, step.status) for step in steps] == [
        ("before", "done"),
        ("summary", "done"),
        ("approve", "done"),
        ("remember", "done"),
        ("after", "done"),
    ]
    assert Interaction.objects.filter(customer=customer, summary="Before the model step").count() == 1
    assert Interaction.objects.filter(customer=customer, summary="After the approval").count() == 1
    assert MemoryItem.objects.filter(text__startswith="Crash test said: The week was calm").count() == 1
    done_events = Counter(
        AuditEvent.objects.filter(action="workflows.step_done", details__run_id=run.pk).values_list(
            "details__step", flat=True
        )
    )
    assert done_events == {"before": 1, "summary": 1, "remember": 1, "after": 1}  # the approval has its own event
    assert AuditEvent.objects.filter(action="workflows.approval_decided", details__run_id=run.pk).count() == 1
    assert AuditEvent.objects.filter(action="workflows.run_requeued", object_id=str(run.pk)).exists()
    assert len(fake_provider.requests) == 2  # the interrupted call and the one of the new attempt
    assert FAKE_KEY in fake_provider.requests[-1].headers.get("authorization", "")
