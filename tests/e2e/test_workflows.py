"""An administrator imports a workflow as YAML and edits it, lets the Staff role run it and runs it by hand; a real
Celery worker runs the steps; a governance officer approves in their own browser; the run page shows the result
live and the audit trail holds the run's events."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from portal.workflows.models import Run
from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.e2e.conftest import sign_in
from tests.e2e.waits import PAGE_WAIT_MS, WORK_WAIT_MS
from tests.workers import Workers

pytestmark = pytest.mark.django_db(transaction=True)

WORKFLOW_YAML = """name: Answer with sign-off
description: Answer a question from the handbook, with an officer's sign-off before it is shared.
inputs:
  - name: topic
    type: text
    label: Topic
steps:
  - id: answer
    kind: ask
    prompt: "Write one sentence about {{ inputs.topic }}."
    task_type: routine
  - id: sign_off
    kind: approval
    approver: {role: Governance officer}
    message: "Share the answer about {{ inputs.topic }}?"
  - id: share
    kind: notify
    message: "Approved answer about {{ inputs.topic }}: {{ steps.answer.text }}"
"""


def _person(username: str, roles: list[str]) -> Any:
    return UserFactory.create(username=username, roles=roles)  # the live server runs in this process, with its hashers


def test_define_run_approve_as_another_role_and_see_the_audit_events(
    page: Any, browser: Any, live_server: Any, workers: Workers
) -> None:
    _person("alice", ["Administrator", "Staff"])
    _person("olivia", ["Governance officer"])
    workers.start()
    reverse("workflows:workflow_list")  # the live server shares this process: its first page then loads no modules

    sign_in(page, "alice", DEFAULT_PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Workflows").click()
    page.get_by_role("link", name="Import YAML").click()
    page.get_by_label("Definition (YAML)").fill(WORKFLOW_YAML.replace("kind: notify", "kind: shout"))
    page.get_by_label("Why this change").fill("First version")
    page.get_by_role("button", name="Publish").click()
    expect(page.locator("#definition-errors")).to_contain_text("line 17: step 'share', field 'kind'")

    page.get_by_label("Definition (YAML)").fill(WORKFLOW_YAML)
    page.get_by_label("Why this change").fill("First version")
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_role("heading", name="Answer with sign-off")).to_be_visible()

    page.get_by_role("link", name="Edit").click()
    editor = page.get_by_label("Definition (YAML)")
    editor.fill(editor.input_value().replace("Write one sentence", "Write two sentences"))
    page.get_by_label("Why this change").fill("Longer answer")
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_text("Published version 2.")).to_be_visible()
    page.get_by_label("Staff").check()
    page.get_by_role("button", name="Save who may run it").click()
    expect(page.get_by_text("Who may run this workflow is saved.")).to_be_visible()

    page.get_by_label("Topic").fill("refunds")
    page.get_by_role("button", name="Start run").click()
    expect(page).to_have_url(re.compile(r"/workflows/runs/\d+/$"))
    expect(page.locator("#run-status")).to_have_text("Waiting for approval", timeout=WORK_WAIT_MS)
    run_id = int(page.url.rstrip("/").split("/")[-1])

    officer_context = browser.new_context(base_url=live_server.url)
    officer_context.set_default_timeout(PAGE_WAIT_MS)
    officer = officer_context.new_page()
    sign_in(officer, "olivia", DEFAULT_PASSWORD)
    officer.get_by_role("navigation", name="Main").get_by_role("link", name="Workflows").click()
    officer.get_by_role("link", name=re.compile(r"Approvals \(1\)")).click()
    officer.get_by_role("link", name="Review").click()
    expect(officer.locator("#approval-preview")).to_contain_text("Approved answer about refunds")
    officer.get_by_role("button", name="Approve").click()
    expect(officer.get_by_text("Your decision is recorded.")).to_be_visible()
    officer_context.close()

    expect(page.locator("#run-status")).to_have_text("Done", timeout=WORK_WAIT_MS)  # the page polls (htmx)
    expect(page.locator(".step").filter(has_text="answer (ask)")).to_contain_text("Done")
    page.goto(f"/audit/?object_type=workflows.run&object_id={run_id}")
    for action in ("workflows.run_started", "workflows.run_finished"):
        expect(page.get_by_text(action).first).to_be_visible()
    run = Run.objects.get(pk=run_id)
    assert run.version.number == 2 and run.status == "done"
    decided_by = run.steps.get(key="sign_off").decided_by
    assert decided_by is not None and decided_by.username == "olivia"
