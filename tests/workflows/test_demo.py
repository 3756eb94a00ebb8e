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
    staff = UserFactory.create(username="staff", roles=["Staff"])
    admin = UserFactory.create(username="admin", roles=["Administrator", "Staff"])
    demo_workflows_ensure()
    demo_workflows_ensure()
    assert set(Workflow.objects.values_list("name", flat=True)) == {FOLLOW_UP, TRIAGE}
    follow_up = Workflow.objects.get(name=FOLLOW_UP)
    assert Schedule.objects.get(workflow=follow_up).cron == "0 8 * * mon"
    assert selectors.may_run(staff, follow_up) and not selectors.may_run(staff, Workflow.objects.get(name=TRIAGE))
    InteractionFactory.create(
        customer=CustomerFactory.create(name="Demo Person"), occurred_at=timezone.now() - dt.timedelta(days=1)
    )
    run = engine.run_drive(run_id=services.run_start(actor=staff, workflow=follow_up, inputs={}).pk)
    assert run.status == Status.WAITING
    [approval] = selectors.approvals_for_user(user=admin)
    assert approval.key == "approve[0]"


def test_triage_labels_a_document_by_rule_and_asks_an_officer_only_when_confidential():
    from portal.workflows.models import Notification
    from tests.assistant.factories import knowledge_base_with

    UserFactory.create(username="staff", roles=["Staff"])
    admin = UserFactory.create(username="admin", roles=["Administrator", "Staff"])
    officer = UserFactory.create(username="officer", roles=["Governance officer"])
    base = knowledge_base_with(
        name="Handbook",
        passages=[("Pay", "Salary bands are confidential.", 1), ("Lunch", "The canteen opens at noon.", 1)],
    )
    demo_workflows_ensure()
    triage = Workflow.objects.get(name=TRIAGE)
    pay, lunch = sorted(base.documents.all(), key=lambda document: document.title != "Pay")
    runs = {}
    for document in (pay, lunch):
        runs[document.title] = engine.run_drive(
            run_id=services.run_start(actor=admin, workflow=triage, inputs={"document": document.pk}).pk
        )
    assert runs["Lunch"].status == Status.DONE
    assert runs["Lunch"].steps.get(key="label").output["label"] == "internal"
    assert runs["Pay"].status == Status.WAITING
    [approval] = selectors.approvals_for_user(user=officer)
    assert "keyword rule" in approval.input["message"]
    services.approval_decide(actor=officer, step_run=approval, approve=True)
    assert engine.run_drive(run_id=runs["Pay"].pk).status == Status.DONE
    note = Notification.objects.get(user=officer, run=runs["Pay"], step_key="tell")
    assert "approved by officer" in note.text
