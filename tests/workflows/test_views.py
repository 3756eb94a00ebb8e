"""Workflow screens: administrators edit, granted people run, approvers decide; others get 403 or 404."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from portal.workflows import engine
from portal.workflows.models import Run, Status, StepRun, Workflow
from tests.workflows.helpers import grant_run, publish, simple_definition

pytestmark = pytest.mark.django_db

APPROVAL_YAML = """name: Ask first
inputs:
  - name: topic
    type: text
steps:
  - id: approve
    kind: approval
    approver: {role: Administrator}
    message: "Send a note about {{ inputs.topic }}?"
  - id: tell
    kind: notify
    message: "Approved note about {{ inputs.topic }}"
"""


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_editor_is_for_administrators_and_shows_errors_with_lines(alice: Any, sam: Any):
    assert _client(sam).get(reverse("workflows:workflow_create")).status_code == 403
    bad = APPROVAL_YAML.replace("kind: notify", "kind: shout")
    response = _client(alice).post(reverse("workflows:workflow_import"), {"yaml_text": bad, "reason": "try"})
    assert response.status_code == 400
    assert "line 11: step &#x27;tell&#x27;" in response.content.decode()
    response = _client(alice).post(reverse("workflows:workflow_import"), {"yaml_text": APPROVAL_YAML, "reason": "new"})
    assert response.status_code == 302


def test_people_see_and_run_only_what_they_were_granted(alice: Any, sam: Any, oscar: Any):
    workflow = publish(alice, simple_definition())
    detail = reverse("workflows:workflow_detail", args=[workflow.pk])
    assert _client(sam).get(detail).status_code == 404
    assert _client(oscar).get(detail).status_code == 404
    assert _client(alice).get(detail).status_code == 200
    grant_run(workflow, sam)
    assert workflow.name in _client(sam).get(reverse("workflows:workflow_list")).content.decode()
    response = _client(sam).post(reverse("workflows:run_start", args=[workflow.pk]), {"topic": "invoices"})
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("workflows:run_detail", args=[run.pk])
    assert _client(sam).get(response["Location"]).status_code == 200
    assert _client(oscar).get(response["Location"]).status_code == 404


def test_an_approver_sees_what_will_be_sent_and_decides(alice: Any, sam: Any):
    _client(alice).post(reverse("workflows:workflow_import"), {"yaml_text": APPROVAL_YAML, "reason": "new"})
    run_workflow = Workflow.objects.get()
    grant_run(run_workflow, sam)
    _client(sam).post(reverse("workflows:run_start", args=[run_workflow.pk]), {"topic": "<b>invoices</b>"})
    run = engine.run_drive(run_id=Run.objects.get().pk)
    step = StepRun.objects.get(run=run, key="approve")
    page = reverse("workflows:approval_detail", args=[step.pk])
    assert _client(sam).get(page).status_code == 404
    shown = _client(alice).get(page).content.decode()
    assert "Approved note about &lt;b&gt;invoices&lt;/b&gt;" in shown  # the preview, escaped
    assert page in _client(alice).get(reverse("workflows:approvals")).content.decode()
    assert page not in _client(sam).get(reverse("workflows:approvals")).content.decode()
    response = _client(alice).post(page, {"decision": "approve"})
    assert response.status_code == 302
    run = engine.run_drive(run_id=run.pk)
    assert run.status == Status.DONE
    fragment = _client(sam).get(reverse("workflows:run_detail", args=[run.pk]), HTTP_HX_REQUEST="true")
    assert "run-steps" in fragment.content.decode() and "<html" not in fragment.content.decode()
