"""Triggers: cron in a time zone (Celery's parser, the portal's evaluator), the schedule beat job, events."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from portal.customers import hooks as customer_hooks
from portal.workflows import services
from portal.workflows.models import Run, Schedule
from portal.workflows.schedule import next_fire
from tests.workflows.helpers import grant_run, publish, simple_definition

UTC = dt.UTC


def test_next_fire_is_the_wall_clock_time_in_the_zone():
    after = dt.datetime(2026, 3, 27, 12, 0, tzinfo=UTC)  # a Friday; London moves to summer time on the 29th
    assert next_fire("0 8 * * mon", "Europe/London", after) == dt.datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert next_fire("0 8 * * mon", "UTC", after) == dt.datetime(2026, 3, 30, 8, 0, tzinfo=UTC)
    assert next_fire("*/15 * * * *", "UTC", after) == dt.datetime(2026, 3, 27, 12, 15, tzinfo=UTC)


def test_a_wall_time_that_does_not_exist_that_day_is_skipped():
    after = dt.datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    # 01:30 does not exist in London on 29 March 2026 (clocks go from 01:00 to 02:00)
    assert next_fire("30 1 * * *", "Europe/London", after) == dt.datetime(2026, 3, 30, 0, 30, tzinfo=UTC)


def test_both_day_fields_restricted_fire_on_either_as_cron_does():
    after = dt.datetime(2026, 6, 1, 0, 0, tzinfo=UTC)  # a Monday
    assert next_fire("0 9 13 * fri", "UTC", after) == dt.datetime(2026, 6, 5, 9, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_a_due_schedule_starts_one_run_as_its_user(alice: Any, sam: Any):
    document = simple_definition(
        triggers=[
            {
                "kind": "schedule",
                "cron": "0 8 * * mon",
                "timezone": "Europe/London",
                "run_as": "sam",
                "inputs": {"topic": "weekly"},
            }
        ]
    )
    workflow = publish(alice, document)
    grant_run(workflow, sam)
    schedule = Schedule.objects.get(workflow=workflow)
    due = schedule.next_at
    assert services.schedules_fire(now=due - dt.timedelta(minutes=1)) == []
    [run_id] = services.schedules_fire(now=due)
    assert services.schedules_fire(now=due) == []  # once per due time
    run = Run.objects.get(pk=run_id)
    assert (run.owner, run.trigger, run.inputs) == (sam, "schedule", {"topic": "weekly"})
    schedule.refresh_from_db()
    assert schedule.last_at == due and schedule.next_at == due + dt.timedelta(days=7)


@pytest.mark.django_db
def test_a_schedule_whose_user_lost_the_run_permission_is_refused_and_audited(alice: Any, sam: Any):
    document = simple_definition(
        triggers=[{"kind": "schedule", "cron": "* * * * *", "run_as": "sam", "inputs": {"topic": "x"}}]
    )
    workflow = publish(alice, document)
    assert services.schedules_fire(now=timezone.now() + dt.timedelta(minutes=2)) == []
    assert AuditEvent.objects.filter(action="workflows.trigger_refused", object_id=str(workflow.pk)).exists()


@pytest.mark.django_db
def test_events_start_the_workflows_that_listen(alice: Any, sam: Any):
    document = {
        "name": "On new customer",
        "inputs": [{"name": "customer", "type": "customer"}],
        "steps": [{"id": "hello", "kind": "interaction", "customer": "{{ inputs.customer }}", "summary": "Welcome"}],
        "triggers": [
            {
                "kind": "event",
                "event": "customer_created",
                "run_as": "sam",
                "inputs": {"customer": "{{ event.customer_id }}"},
            }
        ],
    }
    workflow = publish(alice, document)
    grant_run(workflow, sam)
    heard: list[dict[str, int]] = []
    customer_hooks.register("customer_created", lambda **ids: heard.append(ids))
    from django.test import TestCase

    from portal.customers.services import customer_create

    with TestCase.captureOnCommitCallbacks(execute=False) as callbacks:
        customer = customer_create(actor=sam, name="Event Customer")
    for callback in callbacks:
        callback()
    assert {"customer_id": customer.pk} in heard
    [run_id] = services.event_dispatch(event="customer_created", payload={"customer_id": customer.pk})
    run = Run.objects.get(pk=run_id)
    assert run.trigger == "event" and run.inputs == {"customer": customer.pk} and run.workflow == workflow


def test_an_event_trigger_may_only_use_its_own_variables():
    from portal.workflows.definition import DefinitionInvalid, definition_parse

    document = simple_definition(
        triggers=[
            {
                "kind": "event",
                "event": "document_ingested",
                "run_as": "sam",
                "inputs": {"topic": "{{ event.customer_id }}"},
            }
        ]
    )
    with pytest.raises(DefinitionInvalid) as caught:
        definition_parse(document)
    assert "event.document_id" in str(caught.value)
