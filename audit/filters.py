"""What an auditor can filter the trail by; shared by the review pages, the exports and their jobs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils.dateparse import parse_datetime

from audit.models import AuditEvent


@dataclass(frozen=True)
class AuditFilter:
    start: datetime | None = None
    end: datetime | None = None
    actor: str = ""
    role: str = ""
    action: str = ""
    object_type: str = ""
    object_id: str = ""
    provider: str = ""
    outcome: str = ""
    text: str = ""

    def to_dict(self) -> dict[str, str]:
        """Only the filters in use, as strings (for audit details, job rows and query strings)."""
        result: dict[str, str] = {}
        for name, value in asdict(self).items():
            if value in (None, ""):
                continue
            result[name] = value.isoformat() if isinstance(value, datetime) else str(value)
        return result

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditFilter:
        known = {field.name for field in fields(cls)}
        values: dict[str, Any] = {name: value for name, value in data.items() if name in known}
        for name in ("start", "end"):
            if isinstance(values.get(name), str):
                values[name] = parse_datetime(values[name])
        return cls(**values)

    @property
    def is_empty(self) -> bool:
        return not self.to_dict()


def apply_filter(events: QuerySet[AuditEvent], audit_filter: AuditFilter) -> QuerySet[AuditEvent]:
    if audit_filter.start is not None:
        events = events.filter(created_at__gte=audit_filter.start)
    if audit_filter.end is not None:
        events = events.filter(created_at__lt=audit_filter.end)
    if audit_filter.actor:
        events = events.filter(actor_username__iexact=audit_filter.actor)
    if audit_filter.role:
        events = events.filter(actor_roles__contains=[audit_filter.role])
    if audit_filter.action:
        # an exact action ("auth.login") or a family of them ("auth" or "auth.*")
        prefix = audit_filter.action.rstrip("*").rstrip(".")
        events = events.filter(Q(action=audit_filter.action) | Q(action__startswith=f"{prefix}."))
    if audit_filter.object_type:
        events = events.filter(object_type=audit_filter.object_type)
    if audit_filter.object_id:
        events = events.filter(object_id=audit_filter.object_id)
    if audit_filter.provider:
        events = events.filter(details__provider=audit_filter.provider)
    if audit_filter.outcome:
        events = events.filter(outcome=audit_filter.outcome)
    if audit_filter.text:
        text = audit_filter.text
        events = events.annotate(details_text=Cast("details", TextField())).filter(
            Q(action__icontains=text)
            | Q(actor_username__icontains=text)
            | Q(object_type__icontains=text)
            | Q(object_id__icontains=text)
            | Q(details_text__icontains=text)
        )
    return events
