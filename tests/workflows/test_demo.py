"""The demo workflows publish as valid definitions and the follow-up runs to its manager's approval."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from portal.workflows import engine, selectors, services
from portal.workflows.demo import FOLLOW_UP, TRIAGE, demo_workflows_ensure
from portal.workflows.models import Schedule, Status, Workflow
from tests.accounts.factories import UserFactory
from tests.customers.factories import CustomerFactory, InteractionFactory

pytestmark = pytest.mark.django_db


def test_the_demo_workflows_publish_once_and_the_follow_up_waits_for_a_manager():
    staff = UserFactory(username="staff", roles=["Staff"])
    admin = UserFactory(username="admin", roles=["Administrator", "Staff"])
    demo_workflows_ensure()
    demo_workflows_ensure()
    assert set(Workflow.objects.values_list("name", flat=True)) == {FOLLOW_UP, TRIAGE}
    follow_up = Workflow.objects.get(name=FOLLOW_UP)
    assert Schedule.objects.get(workflow=follow_up).cron == "0 8 * * mon"
    assert selectors.may_run(staff, follow_up) and not selectors.may_run(staff, Workflow.objects.get(name=TRIAGE))
    InteractionFactory(customer=CustomerFactory(name="Demo Person"), occurred_at=timezone.now() - dt.timedelta(days=1))
    run = engine.run_drive(run_id=services.run_start(actor=staff, workflow=follow_up, inputs={}).pk)
    assert run.status == Status.WAITING
    [approval] = selectors.approvals_for_user(user=admin)
    assert approval.key == "approve[0]"
