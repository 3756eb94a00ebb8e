"""Definitions used by the workflow tests."""

from __future__ import annotations

from typing import Any

from guardian.shortcuts import assign_perm

from portal.workflows import services
from portal.workflows.models import Workflow


def simple_definition(name: str = "Follow-up", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "description": "Test workflow",
        "inputs": [{"name": "topic", "type": "text"}],
        "steps": [
            {"id": "note", "kind": "notify", "message": "Topic {{ inputs.topic }}"},
        ],
        **extra,
    }


def publish(actor: Any, document: dict[str, Any], reason: str = "first") -> Workflow:
    version = services.workflow_publish(actor=actor, document=document, reason=reason)
    return version.workflow


def grant_run(workflow: Workflow, *people: Any) -> None:
    for person in people:
        assign_perm("workflows.run_workflow", person, workflow)
