"""Changes to customer records. Each writes its audit event in the same transaction and tells governance
(after commit) that the known-entity dictionary is stale. Audit details name fields, never values."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest
from guardian.shortcuts import assign_perm, get_group_perms, get_user_perms, remove_perm

from audit.services import audit
from portal.core.types import UserLike
from portal.customers import hooks
from portal.customers.entities import known_entities_invalidate_on_commit
from portal.customers.models import Channel, Customer, Interaction, Tier
from portal.customers.selectors import (
    ERROR_NO_CUSTOMER_ACCESS_MANAGE,
    VIEW_CUSTOMER_CODENAME,
    may_manage_customer_access,
)
from portal.customers.validation import clean_account_numbers, clean_emails, clean_phones

ERROR_ADD_CUSTOMER = "Your role may not add customers."
ERROR_CHANGE_CUSTOMER = "Your role may not change customers."
ERROR_DELETE_CUSTOMER = "Your role may not delete customers."
ERROR_ADD_INTERACTION = "Your role may not record interactions."
ERROR_ACCESS_GRANTEE = "Choose a role or a user, not both."
ERROR_ACCESS_NOT_RESTRICTED = (
    "This customer is open to everyone whose role includes customers; restrict it (Edit) to give access one by one."
)
ERROR_ACCESS_NO_CUSTOMER_ROLE = "That user's role does not include customer records: access would not let them see it."

EDITABLE_FIELDS = (
    "name",
    "organisation",
    "emails",
    "phones",
    "postal_address",
    "account_numbers",
    "tier",
    "notes",
    "owner",
    "restricted",
)


def _require(actor: UserLike, permission: str, message: str) -> None:
    if not actor.has_perm(permission):
        raise PermissionDenied(message)


@transaction.atomic
def customer_create(
    *,
    actor: UserLike,
    name: str,
    organisation: str = "",
    emails: Sequence[str] = (),
    phones: Sequence[str] = (),
    postal_address: str = "",
    account_numbers: Sequence[str] = (),
    tier: str = Tier.STANDARD,
    notes: str = "",
    owner: User | None = None,
    restricted: bool = False,
    request: HttpRequest | None = None,
    audit_event: bool = True,
) -> Customer:
    _require(actor, "customers.add_customer", ERROR_ADD_CUSTOMER)
    customer = Customer(
        name=name.strip(),
        organisation=organisation.strip(),
        emails=clean_emails(emails),
        phones=clean_phones(phones),
        postal_address=postal_address.strip(),
        account_numbers=clean_account_numbers(account_numbers),
        tier=tier,
        notes=notes.strip(),
        owner=owner,
        restricted=restricted,
    )
    customer.full_clean()
    customer.save()
    if audit_event:
        audit(
            actor=actor,
            action="customers.customer_created",
            target=customer,
            details={"fields": [f for f in EDITABLE_FIELDS if getattr(customer, f)], "restricted": restricted},
            request=request,
        )
        # one created record, not a CSV import (which audits and would queue one event per row)
        hooks.emit_on_commit("customer_created", customer_id=customer.pk)
    known_entities_invalidate_on_commit()
    return customer


@transaction.atomic
def customer_update(
    *, actor: UserLike, customer: Customer, request: HttpRequest | None = None, **changes: Any
) -> Customer:
    _require(actor, "customers.change_customer", ERROR_CHANGE_CUSTOMER)
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"not editable: {sorted(unknown)}")
    cleaners = {"emails": clean_emails, "phones": clean_phones, "account_numbers": clean_account_numbers}
    changed = []
    for name, value in changes.items():
        if name in cleaners:
            value = cleaners[name](value)
        elif isinstance(value, str):
            value = value.strip()
        if getattr(customer, name) != value:
            setattr(customer, name, value)
            changed.append(name)
    if not changed:
        return customer
    customer.full_clean()
    customer.save()
    audit(
        actor=actor, action="customers.customer_changed", target=customer, details={"fields": changed}, request=request
    )
    known_entities_invalidate_on_commit()
    return customer


@transaction.atomic
def customer_delete(*, actor: UserLike, customer: Customer, request: HttpRequest | None = None) -> None:
    """Delete the record, its interactions and the memories scoped to it; the trail keeps a tombstone."""
    _require(actor, "customers.delete_customer", ERROR_DELETE_CUSTOMER)
    from portal.memory.services import memories_forget_for_customer
    from portal.retention.services import deletion_refuse_if_held

    deletion_refuse_if_held(customer_id=customer.pk)  # a legal hold suspends every deletion

    forgotten = memories_forget_for_customer(actor=actor, customer=customer, request=request)
    customer_id = customer.pk
    interaction_count = customer.interactions.count()
    customer.delete()
    audit(
        actor=actor,
        action="customers.customer_deleted",
        object_type="customers.customer",
        object_id=customer_id,
        details={"interactions_deleted": interaction_count, "memories_forgotten": forgotten},
        request=request,
    )
    known_entities_invalidate_on_commit()


@transaction.atomic
def interaction_create(
    *,
    actor: UserLike,
    customer: Customer,
    channel: str = Channel.EMAIL,
    occurred_at: datetime,
    summary: str,
    full_text: str = "",
    staff: User | None = None,
    request: HttpRequest | None = None,
) -> Interaction:
    _require(actor, "customers.add_interaction", ERROR_ADD_INTERACTION)
    interaction = Interaction(
        customer=customer,
        channel=channel,
        occurred_at=occurred_at,
        summary=summary.strip(),
        full_text=full_text.strip(),
        staff=staff if staff is not None else (actor if isinstance(actor, User) else None),
    )
    interaction.full_clean()
    interaction.save()
    audit(
        actor=actor,
        action="customers.interaction_recorded",
        target=interaction,
        details={"customer_id": customer.pk, "channel": channel},
        request=request,
    )
    hooks.emit_on_commit("interaction_added", interaction_id=interaction.pk, customer_id=customer.pk)
    known_entities_invalidate_on_commit()  # the people it names (a shop manager) are known entities
    return interaction


# ---- who may see a restricted record (per-record guardian permission) ---------------------------------
def _access_grantee(group: Group | None, user: User | None) -> tuple[Group | User, dict[str, Any]]:
    """The role or the user, and how the trail names it: a role by name, a person by id only."""
    if (group is None) == (user is None):
        raise ValidationError(ERROR_ACCESS_GRANTEE)
    if group is not None:
        return group, {"role": group.name}
    assert user is not None
    return user, {"user_id": user.pk}


def _has_direct_access(grantee: Group | User, customer: Customer) -> bool:
    perms = get_group_perms(grantee, customer) if isinstance(grantee, Group) else get_user_perms(grantee, customer)
    return VIEW_CUSTOMER_CODENAME in perms


def _require_access_manager(actor: UserLike, customer: Customer) -> None:
    if not may_manage_customer_access(user=actor, customer=customer):
        raise PermissionDenied(ERROR_NO_CUSTOMER_ACCESS_MANAGE)


@transaction.atomic
def customer_access_grant(
    *,
    actor: UserLike,
    customer: Customer,
    group: Group | None = None,
    user: User | None = None,
    request: HttpRequest | None = None,
) -> bool:
    """Let a role (each of its members) or one person see this restricted record. False when they already could
    by a grant of their own (or, for a person, as its owner): nothing changes and nothing is recorded."""
    _require_access_manager(actor, customer)
    grantee, who = _access_grantee(group, user)
    if not customer.restricted:
        raise ValidationError(ERROR_ACCESS_NOT_RESTRICTED)
    if user is not None and not user.has_perm("customers.view_customer"):
        raise ValidationError(ERROR_ACCESS_NO_CUSTOMER_ROLE)
    if (user is not None and customer.owner_id == user.pk) or _has_direct_access(grantee, customer):
        return False
    assign_perm(f"customers.{VIEW_CUSTOMER_CODENAME}", grantee, customer)
    audit(
        actor=actor,
        action="customers.access_granted",
        target=customer,
        details={"customer_id": customer.pk, **who},
        request=request,
    )
    return True


@transaction.atomic
def customer_access_revoke(
    *,
    actor: UserLike,
    customer: Customer,
    group: Group | None = None,
    user: User | None = None,
    request: HttpRequest | None = None,
) -> bool:
    """Take a role's or a person's grant on this record away. False when there was none.

    Allowed on a record that is no longer restricted too: a grant left there would apply again once it is."""
    _require_access_manager(actor, customer)
    grantee, who = _access_grantee(group, user)
    if not _has_direct_access(grantee, customer):
        return False
    remove_perm(f"customers.{VIEW_CUSTOMER_CODENAME}", grantee, customer)
    audit(
        actor=actor,
        action="customers.access_revoked",
        target=customer,
        details={"customer_id": customer.pk, **who},
        request=request,
    )
    return True
