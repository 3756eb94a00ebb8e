"""The two demo workflows: a weekly customer follow-up and new-document triage (published once, by the system)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group

from governance.roles import ADMINISTRATOR, GOVERNANCE_OFFICER, STAFF

FOLLOW_UP = "Weekly customer follow-up"
TRIAGE = "New-document triage"


def follow_up_definition() -> dict[str, Any]:
    return {
        "name": FOLLOW_UP,
        "description": "Every Monday at 08:00 (London): summarise each customer with interactions in the last 7 days "
        "through the gate, ask a manager, then keep a proposed memory and record the follow-up.",
        "steps": [
            {"id": "policy", "kind": "search", "query": "customer follow-up complaints refunds", "k": 3},
            {
                "id": "each",
                "kind": "for_each",
                "over": {"customers": {"interacted_within_days": 7}},
                "as": "customer",
                "limit": 200,
                "steps": [
                    {
                        "id": "summary",
                        "kind": "ask",
                        "prompt": "Summarise this customer's last week in two sentences and suggest one follow-up.",
                        "customer": "{{ customer.id }}",
                        "context": ["policy"],
                        "task_type": "summarize",
                        "retries": 1,
                    },
                    {
                        "id": "approve",
                        "kind": "approval",
                        "approver": {"role": ADMINISTRATOR},
                        "message": "Keep this week's summary of {{ customer.name }} and record the follow-up?",
                        "deadline_hours": 72,
                        "on_expiry": "reject",
                        "on_reject": "skip_item",
                    },
                    {
                        "id": "remember",
                        "kind": "memory",
                        "text": "Weekly follow-up: {{ steps.summary.text }}",
                        "customer": "{{ customer.id }}",
                    },
                    {
                        "id": "record",
                        "kind": "interaction",
                        "customer": "{{ customer.id }}",
                        "summary": "Weekly follow-up (workflow run {{ run.id }})",
                        "full_text": "{{ steps.summary.text }}",
                    },
                ],
            },
            {
                "id": "done",
                "kind": "notify",
                "message": "Weekly follow-up finished for {{ steps.each.count }} customers.",
            },
        ],
        "triggers": [
            {"kind": "manual"},
            {"kind": "schedule", "cron": "0 8 * * mon", "timezone": "Europe/London", "run_as": "staff"},
        ],
    }


def triage_definition() -> dict[str, Any]:
    return {
        "name": TRIAGE,
        "description": "When a document is ingested: the local sensitivity model (or a keyword rule) labels it; if "
        "confidential, a governance officer approves the label.",
        "inputs": [{"name": "document", "type": "document"}],
        "steps": [
            {
                "id": "label",
                "kind": "classify",
                "document": "{{ inputs.document }}",
                "keywords": ["confidential", "salary", "password", "do not share"],
            },
            {
                "id": "is_confidential",
                "kind": "condition",
                "if": {"var": "steps.label.label", "op": "equals", "value": "confidential"},
                "then": [
                    {
                        "id": "officer",
                        "kind": "approval",
                        "approver": {"role": GOVERNANCE_OFFICER},
                        "message": "Document {{ inputs.document }} looks confidential ({{ steps.label.source }}). "
                        "Approve the label?",
                        "deadline_hours": 48,
                        "on_reject": "continue",
                    },
                    {
                        "id": "tell",
                        "kind": "notify",
                        "to": {"role": GOVERNANCE_OFFICER},
                        "message": "Document {{ inputs.document }}: confidential label "
                        "{{ steps.officer.decision }} by {{ steps.officer.by }}.",
                    },
                ],
            },
        ],
        "triggers": [
            {"kind": "manual"},
            {
                "kind": "event",
                "event": "document_ingested",
                "run_as": "admin",
                "inputs": {"document": "{{ event.document_id }}"},
            },
        ],
    }


def demo_workflows_ensure() -> None:
    """Publish both demo workflows once and let Staff run the follow-up and Administrators both."""
    from portal.workflows.models import Workflow
    from portal.workflows.services import workflow_grant, workflow_publish

    for definition, runners in (
        (follow_up_definition(), (STAFF, ADMINISTRATOR)),
        (triage_definition(), (ADMINISTRATOR,)),
    ):
        if Workflow.objects.filter(name=definition["name"]).exists():
            continue
        workflow = workflow_publish(actor=None, document=definition, reason="Demo workflow", source="demo").workflow
        workflow_grant(actor=None, workflow=workflow, roles=list(Group.objects.filter(name__in=runners)))
