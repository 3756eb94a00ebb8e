"""The follow-up definition the engine and worker tests run (the demo's weekly follow-up, without a schedule)."""

from __future__ import annotations

from typing import Any


def follow_up_definition(
    name: str = "Customer follow-up", approver: dict[str, str] | None = None, on_reject: str = "skip_item"
) -> dict[str, Any]:
    return {
        "name": name,
        "description": "Summarise each recently active customer, ask a manager, remember and record.",
        "inputs": [{"name": "days", "type": "number", "default": 7}],
        "steps": [
            {"id": "policy", "kind": "search", "query": "follow-up policy"},
            {
                "id": "each",
                "kind": "for_each",
                "over": {"customers": {"interacted_within_days": 7}},
                "as": "customer",
                "steps": [
                    {
                        "id": "summary",
                        "kind": "ask",
                        "prompt": "Summarise the last week with {{ customer.name }} in two sentences.",
                        "customer": "{{ customer.id }}",
                        "context": ["policy"],
                        "task_type": "summarize",
                    },
                    {
                        "id": "approve",
                        "kind": "approval",
                        "approver": approver or {"role": "Administrator"},
                        "message": "Keep this summary of {{ customer.name }}?",
                        "on_reject": on_reject,
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
                        "summary": "Weekly follow-up summary (workflow run {{ run.id }})",
                        "full_text": "{{ steps.summary.text }}",
                    },
                ],
            },
            {
                "id": "anything",
                "kind": "condition",
                "if": {"var": "steps.each.count", "op": "greater_than", "value": 0},
                "then": [
                    {"id": "tell", "kind": "notify", "message": "Follow-up done for {{ steps.each.count }} customers."}
                ],
            },
        ],
    }
