"""What the portal holds about one person, section by section, and the bundle (a zip of JSON and CSV) of it.

For a customer: the record, its interactions, the memories scoped to it, the conversations about it with their
messages, the local models' predictions, and the audit events naming it (ids and actions only). For a staff
member: the account (no password hash), their conversations and messages, their personal memories and the ones
they wrote, the interactions they logged, their AI usage rows, and the audit events they did or that name them.

Reads cross app boundaries here, the way portal/retention's due_queryset does: a data-subject request is about
everything, and each section is a plain values() query so a new column shows up in the bundle by itself only
when added to its list below (on purpose: internal columns such as embeddings or manifests are not personal data
of the subject, and a manifest's values are the message's own).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.db.models import Q, QuerySet

from audit.exports import neutralise_cell

AUDIT_COLUMNS = ("id", "seq", "created_at", "action", "object_type", "object_id", "outcome")


@dataclass(frozen=True)
class Section:
    name: str
    rows: Callable[[int], Iterable[dict[str, Any]]]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _rows(queryset: QuerySet[Any], *fields: str) -> list[dict[str, Any]]:
    return [{key: _plain(value) for key, value in row.items()} for row in queryset.values(*fields)]


# ---- a customer --------------------------------------------------------------------------------------
def _customer_record(pk: int) -> list[dict[str, Any]]:
    from portal.customers.models import Customer

    return _rows(Customer.objects.filter(pk=pk), "id", "name", "organisation", "emails", "phones", "postal_address",
                 "account_numbers", "tier", "notes", "owner_id", "restricted", "created_at", "updated_at")  # fmt: skip


def _customer_interactions(pk: int) -> list[dict[str, Any]]:
    from portal.customers.models import Interaction

    return _rows(Interaction.objects.filter(customer_id=pk).order_by("occurred_at", "pk"), "id", "channel",
                 "occurred_at", "staff_id", "summary", "full_text", "created_at")  # fmt: skip


def _memory_fields() -> tuple[str, ...]:
    return ("id", "text", "kind", "scope", "status", "sensitivity", "source", "author_id", "created_at", "updated_at")


def _customer_memories(pk: int) -> list[dict[str, Any]]:
    from portal.memory.models import MemoryItem

    return _rows(MemoryItem.objects.filter(scope_customer_id=pk).order_by("pk"), *_memory_fields())


def _conversations(condition: Q) -> list[dict[str, Any]]:
    from portal.assistant.models import Conversation

    return _rows(Conversation.objects.filter(condition).order_by("pk"), "id", "title", "owner_id", "customer_id",
                 "created_at", "updated_at")  # fmt: skip


def _messages(condition: Q) -> list[dict[str, Any]]:
    from portal.assistant.models import Message

    return _rows(Message.objects.filter(condition).order_by("conversation_id", "pk"), "id", "conversation_id",
                 "role", "status", "content", "feedback", "feedback_comment", "created_at")  # fmt: skip


def _customer_predictions(pk: int) -> list[dict[str, Any]]:
    from portal.ml.models import CustomerPrediction

    return _rows(CustomerPrediction.objects.filter(customer_id=pk).order_by("purpose"), "id", "purpose", "label",
                 "probability", "reasons", "model_version_id", "created_at")  # fmt: skip


def _audit_rows(condition: Q) -> list[dict[str, Any]]:
    from audit.models import AuditEvent

    return _rows(AuditEvent.objects.filter(condition).order_by("seq"), *AUDIT_COLUMNS)


def customer_audit_condition(pk: int) -> Q:
    return (Q(object_type="customers.customer", object_id=str(pk)) | Q(details__customer_id=pk)
            | Q(details__customer_id=str(pk)))  # fmt: skip


CUSTOMER_SECTIONS = [
    Section("record", _customer_record),
    Section("interactions", _customer_interactions),
    Section("memories", _customer_memories),
    Section("conversations", lambda pk: _conversations(Q(customer_id=pk))),
    Section("messages", lambda pk: _messages(Q(conversation__customer_id=pk))),
    Section("predictions", _customer_predictions),
    Section("audit_events", lambda pk: _audit_rows(customer_audit_condition(pk))),
]


# ---- a staff member ----------------------------------------------------------------------------------
def _user_record(pk: int) -> list[dict[str, Any]]:
    from django.contrib.auth.models import User

    rows = _rows(User.objects.filter(pk=pk), "id", "username", "first_name", "last_name", "email", "is_active",
                 "date_joined", "last_login")  # fmt: skip
    for row in rows:
        row["roles"] = sorted(User.objects.get(pk=pk).groups.values_list("name", flat=True))
    return rows


def _user_memories(pk: int) -> list[dict[str, Any]]:
    from portal.memory.models import MemoryItem

    return _rows(MemoryItem.objects.filter(Q(scope_user_id=pk) | Q(author_id=pk)).order_by("pk"), *_memory_fields())


def _user_interactions(pk: int) -> list[dict[str, Any]]:
    from portal.customers.models import Interaction

    return _rows(Interaction.objects.filter(staff_id=pk).order_by("occurred_at", "pk"), "id", "customer_id",
                 "channel", "occurred_at", "summary", "created_at")  # fmt: skip


def _user_usage(pk: int) -> list[dict[str, Any]]:
    from portal.routing.models import Usage

    return _rows(Usage.objects.filter(user_id=pk).order_by("created_at"), "id", "created_at", "task_type", "tier",
                 "model_name", "provider", "tokens_in", "tokens_out", "cost", "outcome")  # fmt: skip


def user_audit_condition(pk: int) -> Q:
    return Q(actor_id=pk) | Q(object_type="auth.user", object_id=str(pk))


USER_SECTIONS = [
    Section("record", _user_record),
    Section("conversations", lambda pk: _conversations(Q(owner_id=pk))),
    Section("messages", lambda pk: _messages(Q(conversation__owner_id=pk))),
    Section("memories", _user_memories),
    Section("interactions", _user_interactions),
    Section("usage", _user_usage),
    Section("audit_events", lambda pk: _audit_rows(user_audit_condition(pk))),
]


def sections_for(subject_type: str) -> list[Section]:
    return CUSTOMER_SECTIONS if subject_type == "customer" else USER_SECTIONS


# ---- the bundle --------------------------------------------------------------------------------------
def _csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            text = "" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            cells.append(neutralise_cell(str(text)))
        writer.writerow(cells)
    return buffer.getvalue()


def bundle_write(path: Path, *, header: dict[str, Any], sections: dict[str, list[dict[str, Any]]]) -> None:
    """bundle.json (everything) and one CSV per section, in one zip at `path`."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bundle.json", json.dumps({**header, "sections": sections}, ensure_ascii=False, indent=2))
        for name, rows in sections.items():
            archive.writestr(f"{name}.csv", _csv_text(rows))
        archive.writestr("README.txt", README_TEXT)


README_TEXT = """A copy of what the portal holds about one person.

bundle.json holds every section; each section is also a CSV file of its own (UTF-8, one row per item).
audit_events lists the events of the portal's audit trail that name this person: ids and actions only
(the trail never holds personal values).
"""
