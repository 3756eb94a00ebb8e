"""Runs in this process (engine.run_drive): steps, approvals, failures, cancellation, takeover after a crash."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from audit.models import AuditEvent
from portal.customers.models import Interaction
from portal.memory.models import MemoryItem
from portal.workflows import engine, selectors, services
from portal.workflows.models import Notification, Run, Status, StepRun
from tests.customers.factories import CustomerFactory, InteractionFactory
from tests.workflows.factories_defs import follow_up_definition
from tests.workflows.helpers import grant_run, publish

pytestmark = pytest.mark.django_db


@pytest.fixture
def customers() -> list[Any]:
    recent = timezone.now() - dt.timedelta(days=2)
    first, second = CustomerFactory.create(name="Ada Lovelace"), CustomerFactory.create(name="Grace Hopper")
    InteractionFactory.create(customer=first, occurred_at=recent, summary="Asked about invoices")
    InteractionFactory.create(customer=second, occurred_at=recent, summary="Renewal call")
    CustomerFactory.create(name="Quiet Customer")  # no interaction in the last week: not an item
    return [first, second]


def _start(alice: Any, sam: Any, **kwargs: Any) -> Run:
    workflow = publish(alice, follow_up_definition(**kwargs))
    grant_run(workflow, sam)
    return services.run_start(actor=sam, workflow=workflow, inputs={})


def test_a_run_needs_the_run_permission(alice: Any, sam: Any, oscar: Any):
    workflow = publish(alice, follow_up_definition())
    with pytest.raises(PermissionDenied):
        services.run_start(actor=sam, workflow=workflow, inputs={})
    grant_run(workflow, sam)
    assert services.run_start(actor=sam, workflow=workflow, inputs={}).owner == sam
    assert list(selectors.workflows_for_user(user=oscar)) == []
    assert list(selectors.workflows_for_user(user=sam)) == [workflow]


def test_follow_up_runs_each_customer_through_the_gate_and_an_approval(alice: Any, sam: Any, customers: list[Any]):
    run = _start(alice, sam)
    run = engine.run_drive(run_id=run.pk)
    assert run.status == Status.WAITING
    summary = StepRun.objects.get(run=run, key="summary[0]")
    assert summary.status == Status.DONE and summary.output["text"]
    assert summary.manifest, "the gate's manifest is stored with the step"
    assert summary.overhead_ms is not None
    [waiting] = selectors.approvals_for_user(user=alice)
    assert waiting.key == "approve[0]"
    assert waiting.input["preview"]["kind"] == "memory"
    assert "Weekly follow-up:" in waiting.input["preview"]["text"]
    assert not selectors.approvals_for_user(user=sam).exists(), "sam is not an Administrator"
    with pytest.raises(PermissionDenied):
        services.approval_decide(actor=sam, step_run=waiting, approve=True)

    services.approval_decide(actor=alice, step_run=waiting, approve=True)
    run = engine.run_drive(run_id=run.pk)
    [second] = selectors.approvals_for_user(user=alice)
    assert second.key == "approve[1]"
    services.approval_decide(actor=alice, step_run=second, approve=False)  # skip_item: Grace gets nothing
    run = engine.run_drive(run_id=run.pk)

    assert run.status == Status.DONE, run.error
    [memory] = MemoryItem.objects.filter(text__startswith="Weekly follow-up:")
    assert memory.status == "proposed" and memory.scope_customer_id == customers[0].pk
    recorded = Interaction.objects.filter(summary__startswith="Weekly follow-up summary")
    assert [item.customer_id for item in recorded] == [customers[0].pk]
    assert not StepRun.objects.filter(run=run, key__in=["remember[1]", "record[1]"]).exists()
    assert Notification.objects.filter(user=sam, run=run, step_key="tell").exists()
    actions = set(AuditEvent.objects.filter(object_type__startswith="workflows.").values_list("action", flat=True))
    assert {
        "workflows.run_started",
        "workflows.step_done",
        "workflows.approval_requested",
        "workflows.approval_decided",
        "workflows.run_finished",
    } <= actions
    for event in AuditEvent.objects.filter(action__startswith="workflows."):
        assert "Ada" not in str(event.details) and "Lovelace" not in str(event.details)


def test_a_deleted_customer_fails_its_item_and_the_others_go_on(alice: Any, sam: Any, customers: list[Any]):
    run = _start(alice, sam, approver={"user": "sam"})
    run = engine.run_drive(run_id=run.pk)
    services.approval_decide(actor=sam, step_run=StepRun.objects.get(run=run, key="approve[0]"), approve=True)
    customers[1].delete()  # gone before its turn
    run = engine.run_drive(run_id=run.pk)
    failed = StepRun.objects.get(run=run, key="summary[1]")
    assert failed.status == Status.FAILED and "no longer exists" in failed.error
    assert run.status == Status.DONE
    assert StepRun.objects.get(run=run, key="record[0]").status == Status.DONE


def test_a_failing_step_is_retried_then_stops_the_run_with_its_reason(alice: Any, sam: Any):
    document = {
        "name": "Record",
        "inputs": [{"name": "who", "type": "text"}],
        "steps": [
            {"id": "record", "kind": "interaction", "customer": "{{ inputs.who }}", "summary": "x", "retries": 2},
            {"id": "after", "kind": "notify", "message": "never"},
        ],
    }
    workflow = publish(alice, document)
    grant_run(workflow, sam)
    run = engine.run_drive(run_id=services.run_start(actor=sam, workflow=workflow, inputs={"who": "not a number"}).pk)
    assert run.status == Status.FAILED
    step = StepRun.objects.get(run=run, key="record")
    assert step.status == Status.FAILED and step.failures == 3 and step.attempts == 3
    assert "customer must be a number" in run.error and "'record'" in run.error
    assert not StepRun.objects.filter(run=run, key="after").exists()


def test_cancel_stops_a_waiting_run_and_outdated_messages_do_nothing(alice: Any, sam: Any, customers: list[Any]):
    run = engine.run_drive(run_id=_start(alice, sam).pk)
    old_seq = run.seq
    services.run_cancel(actor=sam, run=run)
    run.refresh_from_db()
    assert run.status == Status.CANCELLED
    assert StepRun.objects.get(run=run, key="approve[0]").status == Status.CANCELLED
    assert engine.run_advance(run_id=run.pk, seq=old_seq) == "nothing to do"
    assert AuditEvent.objects.filter(action="workflows.run_cancelled", object_id=str(run.pk)).exists()


def test_a_dead_attempt_is_taken_over_and_can_never_commit(alice: Any, sam: Any, customers: list[Any], settings: Any):
    run = _start(alice, sam)
    first = engine.claim(run.pk, run.seq)  # the "search" step, claimed by a worker that then dies
    assert first is not None and first.key == "policy"
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - dt.timedelta(hours=1))
    StepRun.objects.filter(pk=first.step_run_id).update(heartbeat_at=timezone.now() - dt.timedelta(hours=1))
    sent: list[tuple[int, int]] = []
    engine.enqueue = lambda run_id, seq, timeout, countdown: sent.append((run_id, seq))
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("django.db.transaction.on_commit", lambda callback, using=None: callback())
            assert services.runs_requeue_stalled() == [run.pk]
    finally:
        engine.enqueue = engine._celery_enqueue
    assert sent == [(run.pk, run.seq)]
    second = engine.claim(run.pk, run.seq)
    assert second is not None and second.attempt == 2
    engine.execute(first)  # the old attempt wakes up: nothing of it is kept
    assert StepRun.objects.get(pk=first.step_run_id).status == Status.RUNNING
    engine.execute(second)
    step = StepRun.objects.get(pk=first.step_run_id)
    assert step.status == Status.DONE and step.attempts == 2
    assert AuditEvent.objects.filter(action="workflows.step_done", object_id=str(step.pk)).count() == 1
