"""Definitions: validation errors name the step, the field and the YAML line; versions are immutable with a
readable diff; restore publishes a copy; import updates the named workflow; only administrators edit."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from audit.models import AuditEvent
from portal.workflows import services
from portal.workflows.definition import DefinitionInvalid, definition_parse
from portal.workflows.models import Workflow, WorkflowVersion
from portal.workflows.yaml_io import definition_from_yaml, definition_to_yaml
from tests.workflows.helpers import publish, simple_definition

pytestmark = pytest.mark.django_db

BAD_YAML = """name: Broken
steps:
  - id: each
    kind: for_each
    over:
      customers: {}
    steps:
      - id: summary
        kind: ask
        promt: Summarise
  - id: approve
    kind: approval
    approver: {}
"""


def test_every_error_names_its_step_field_and_line():
    with pytest.raises(DefinitionInvalid) as caught:
        definition_from_yaml(BAD_YAML)
    rendered = [str(error) for error in caught.value.errors]
    assert "line 8: step 'summary', field 'prompt': Field required" in rendered
    assert "line 10: step 'summary', field 'promt': Extra inputs are not permitted" in rendered
    assert "line 13: step 'approve', field 'approver': give exactly one of role or user" in rendered


def test_unknown_variables_and_duplicate_ids_are_refused():
    document = simple_definition(
        steps=[
            {"id": "a", "kind": "notify", "message": "{{ steps.later.text }} {{ item.name }} {{ inputs.nope }}"},
            {"id": "a", "kind": "notify", "message": "x"},
        ]
    )
    with pytest.raises(DefinitionInvalid) as caught:
        definition_parse(document)
    messages = [(error.step, error.field, error.message) for error in caught.value.errors]
    assert sum(1 for step, field, _ in messages if step == "a" and field == "message") == 3
    assert any("already has the id 'a'" in message for _, _, message in messages)


def test_a_yaml_syntax_error_has_its_line():
    with pytest.raises(DefinitionInvalid) as caught:
        definition_from_yaml("name: x\nsteps:\n  - id: [unclosed\n")
    [error] = caught.value.errors
    assert error.line is not None and error.line >= 3
    assert "not valid YAML" in error.message


def test_a_bad_cron_expression_and_time_zone_are_refused():
    document = simple_definition(
        triggers=[{"kind": "schedule", "cron": "61 8 * * mon", "timezone": "Mars/Olympus", "run_as": "sam"}]
    )
    with pytest.raises(DefinitionInvalid) as caught:
        definition_parse(document)
    text = " ".join(str(error) for error in caught.value.errors)
    assert "61 > 59" in text and "Mars/Olympus" in text


def test_names_that_do_not_exist_never_publish(alice: Any):
    document = simple_definition(
        steps=[
            {"id": "ok", "kind": "approval", "approver": {"role": "Wizards"}},
            {"id": "n", "kind": "notify", "message": "x"},
        ]
    )
    with pytest.raises(DefinitionInvalid) as caught:
        services.workflow_publish(actor=alice, document=document, reason="try")
    [error] = caught.value.errors
    assert (error.step, error.field) == ("ok", "approver.role")
    assert not Workflow.objects.exists()


def test_publishing_makes_immutable_versions_with_a_diff_and_restore_copies(alice: Any):
    workflow = publish(alice, simple_definition())
    changed = simple_definition(steps=[{"id": "note", "kind": "notify", "message": "Changed {{ inputs.topic }}"}])
    second = services.workflow_publish(actor=alice, document=changed, reason="wording")
    assert second.number == 2
    assert second.diff == [
        {"field": "steps[note].message", "before": "Topic {{ inputs.topic }}", "after": "Changed {{ inputs.topic }}"}
    ]
    with pytest.raises(ValidationError):
        services.workflow_publish(actor=alice, document=changed, reason="same again")
    first = workflow.versions.get(number=1)
    first.reason = "rewritten"
    with pytest.raises(ValueError):
        first.save()
    restored = services.workflow_restore(actor=alice, version=WorkflowVersion.objects.get(pk=first.pk), reason="back")
    assert restored.number == 3 and restored.restored_from_id == first.pk
    assert restored.definition == WorkflowVersion.objects.get(pk=first.pk).definition
    workflow.refresh_from_db()
    assert workflow.current_id == restored.pk
    actions = list(AuditEvent.objects.filter(object_type="workflows.workflow").values_list("action", flat=True))
    assert actions.count("workflows.workflow_published") == 2 and "workflows.workflow_restored" in actions


def test_import_updates_the_named_workflow_as_a_new_version(alice: Any):
    workflow = publish(alice, simple_definition())
    assert workflow.current is not None
    exported = definition_to_yaml(workflow.current.definition)
    edited = exported.replace("Topic {{ inputs.topic }}", "Imported {{ inputs.topic }}")
    version = services.workflow_import(actor=alice, text=edited, reason="from staging")
    assert version.workflow_id == workflow.pk and version.number == 2 and version.source == "import"
    assert Workflow.objects.count() == 1
    event = AuditEvent.objects.filter(action="workflows.workflow_published").latest("seq")
    assert event.details["source"] == "import" and "Imported" not in str(event.details)


def test_only_administrators_edit(sam: Any, olivia: Any):
    for person in (sam, olivia):
        with pytest.raises(PermissionDenied):
            services.workflow_publish(actor=person, document=simple_definition(), reason="mine")


def test_who_may_run_is_set_per_workflow_and_audited(alice: Any, sam: Any, oscar: Any):
    from django.contrib.auth.models import Group

    from portal.workflows import selectors

    workflow = publish(alice, simple_definition())
    staff = Group.objects.get(name="Staff")
    services.workflow_grant(actor=alice, workflow=workflow, roles=[staff], users=[oscar])
    assert selectors.may_run(sam, workflow) and selectors.may_run(oscar, workflow)
    services.workflow_grant(actor=alice, workflow=workflow, roles=[])
    assert not selectors.may_run(sam, workflow) and not selectors.may_run(oscar, workflow)
    event = AuditEvent.objects.filter(action="workflows.workflow_access_changed").latest("seq")
    assert event.details["roles_before"] == ["Staff"] and event.details["users_before"] == [oscar.pk]
    assert event.details["roles_after"] == [] and event.details["users_after"] == []
    with pytest.raises(PermissionDenied):
        services.workflow_grant(actor=sam, workflow=workflow, roles=[staff])
