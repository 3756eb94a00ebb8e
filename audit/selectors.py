from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from audit.chain import HASHED_FIELDS, ChainReport, verify_events
from audit.models import AuditEvent

VERIFY_CHUNK_SIZE = 5000


def audit_events_for_verification() -> Iterator[dict[str, Any]]:
    columns = ("id", "hash", *HASHED_FIELDS)
    return AuditEvent.objects.order_by("seq").values(*columns).iterator(chunk_size=VERIFY_CHUNK_SIZE)


def audit_chain_verify() -> ChainReport:
    return verify_events(audit_events_for_verification())
