"""Writing the audit trail. Every other app records what it does through `audit()`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection, models, transaction
from django.http import HttpRequest
from django.utils import timezone

from audit.chain import GENESIS_HASH, event_hash, normalise_details
from audit.models import AuditEvent, Outcome

# Arbitrary constant: the key of the PostgreSQL advisory lock that serialises chain appends.
AUDIT_CHAIN_LOCK_KEY = 0x4155_4449_5400  # "AUDIT"
MAX_ROLE_NAMES = 20


def actor_roles(actor: AbstractBaseUser | AnonymousUser | None) -> list[str]:
    if actor is None or not getattr(actor, "is_authenticated", False) or actor.pk is None:
        return []
    return sorted(actor.groups.values_list("name", flat=True)[:MAX_ROLE_NAMES])  # type: ignore[union-attr]


def client_address(request: HttpRequest | None) -> str:
    if request is None:
        return ""
    return str(request.META.get("REMOTE_ADDR", ""))


def audit(
    *,
    actor: AbstractBaseUser | AnonymousUser | None,
    action: str,
    target: models.Model | None = None,
    object_type: str = "",
    object_id: str | int = "",
    outcome: str = Outcome.SUCCESS,
    details: Mapping[str, Any] | None = None,
    request: HttpRequest | None = None,
    actor_username: str = "",
) -> AuditEvent:
    """Append one event to the chain, inside the caller's transaction.

    The advisory lock is transaction-scoped: concurrent writers queue here until the holder commits or
    rolls back, so each event links to the event committed just before it and the chain stays linear.
    If the caller's transaction rolls back, its events vanish with the change they described.
    """
    if target is not None:
        object_type = object_type or target._meta.label_lower
        object_id = object_id or str(target.pk)
    authenticated = actor is not None and getattr(actor, "is_authenticated", False)
    event_details = normalise_details(details)
    address = client_address(request)
    if address:
        event_details.setdefault("ip", address)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_CHAIN_LOCK_KEY])
        head = AuditEvent.objects.order_by("-seq").values("seq", "hash").first()
        fields: dict[str, Any] = {
            "seq": (head["seq"] + 1) if head else 1,
            "created_at": timezone.now(),
            "actor_id": actor.pk if authenticated else None,  # type: ignore[union-attr]
            "actor_username": (actor.get_username() if authenticated else actor_username)[:150],  # type: ignore[union-attr]
            "actor_roles": actor_roles(actor),
            "action": action,
            "object_type": object_type,
            "object_id": str(object_id),
            "outcome": str(outcome),
            "details": event_details,
            "previous_hash": head["hash"] if head else GENESIS_HASH,
        }
        fields["hash"] = event_hash(fields)
        return AuditEvent.objects.create(**fields)
