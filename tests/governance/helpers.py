"""Assertions shared by the fail-closed tests of the gate."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db.models import Max

from audit.models import AuditEvent
from governance.gate import EgressBlocked


def audit_head() -> int:
    return int(AuditEvent.objects.aggregate(head=Max("seq"))["head"] or 0)


def assert_one_blocked_event(
    *, since: int, user: Any, conversation_key: str, reason: str, subject: tuple[str, str] | None = None
) -> None:
    """Exactly one `governance.egress_blocked` event after `since`, naming the asker, what it is about (the
    caller's subject, by default the conversation) and the reason the user was given; nothing else."""
    events = list(AuditEvent.objects.filter(action="governance.egress_blocked", seq__gt=since))
    assert len(events) == 1, [event.details for event in events]
    (event,) = events
    assert event.outcome == "denied"
    assert event.actor_id == (user.pk if user is not None else None)
    assert (event.object_type, event.object_id) == (subject or ("conversation", conversation_key[:100]))
    assert event.details == {"reason": reason}


@contextmanager
def blocked_and_audited(
    user: Any, conversation_key: str, *, match: str | None = None, reason: str | None = None
) -> Iterator[pytest.ExceptionInfo[EgressBlocked]]:
    """The block raises EgressBlocked and writes its one audit event, whose reason is the message the user
    sees (or `reason`, for failures whose recorded reason is kept generic)."""
    before = audit_head()
    with pytest.raises(EgressBlocked, match=match) as blocked:
        yield blocked
    assert_one_blocked_event(
        since=before,
        user=user,
        conversation_key=conversation_key,
        reason=reason if reason is not None else str(blocked.value),
    )
