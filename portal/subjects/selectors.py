"""Who may ask for what, the requests a user may see (their own only), and the values of a subject."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet

from portal.core.access import not_visible
from portal.subjects.models import RequestKind, SubjectRequest, SubjectType
from portal.subjects.scan import clean_values

HANDLE_PERMISSION = "subjects.handle_subjectrequest"
ERROR_NOT_ALLOWED = (
    "Data-subject requests for other people are for governance officers and administrators; "
    "you may ask for a copy of your own data."
)
ERROR_NOT_FOUND = "No such request."


def can_handle(user: Any) -> bool:
    return bool(user.is_authenticated and user.has_perm(HANDLE_PERMISSION))


def require_may_request(user: Any, *, kind: str, subject_type: str, subject_id: int) -> None:
    """Officers and administrators: anything. Anyone signed in: a copy (access) of their own staff data."""
    if can_handle(user):
        return
    own_access = kind == RequestKind.ACCESS and subject_type == SubjectType.USER and subject_id == user.pk
    if not (user.is_authenticated and own_access):
        raise PermissionDenied(ERROR_NOT_ALLOWED)


def subject_requests_for_user(*, user: Any) -> QuerySet[SubjectRequest]:
    """The requests this user made: a bundle is private to whoever asked, officers included (in the query)."""
    return SubjectRequest.objects.filter(requested_by=user.pk)


def subject_request_get(*, user: Any, request_id: int) -> SubjectRequest:
    found = subject_requests_for_user(user=user).filter(pk=request_id).first()
    if found is None:
        raise not_visible(SubjectRequest, request_id, ERROR_NOT_FOUND)
    return found


def subject_exists(subject_type: str, subject_id: int) -> bool:
    from django.contrib.auth.models import User

    from portal.customers.models import Customer

    model: Any = Customer if subject_type == SubjectType.CUSTOMER else User
    return bool(model.objects.filter(pk=subject_id).exists())


def customer_values(customer_id: int) -> list[str]:
    """The values that identify a customer: name, e-mails, phones (in every spelling the detector knows),
    account numbers and postal address. Not the organisation: it names a company other customers share; nor a
    value another customer's record also holds (a shared switchboard number): it is theirs too, and stays."""
    from governance.known_entities import address_parts
    from portal.customers.entities import customer_entity_values, phone_variants
    from portal.customers.models import Customer

    row = (
        Customer.objects.filter(pk=customer_id)
        .values_list("name", "emails", "phones", "account_numbers", "postal_address")
        .first()
    )
    if row is None:
        return []
    name, emails, phones, accounts, address = row
    values = [name, *emails, *accounts, *(account.replace(" ", "") for account in accounts)]
    if address.strip():
        # the whole address and the parts people quote alone (street with number, postcode with city)
        values += [" ".join(part.split()) if "\n" in part else part for part in address_parts(address.strip())]
        values.append(address.strip())
    for phone in phones:
        values += phone_variants(phone)
    own = f"customer {customer_id} "
    shared = {value.casefold() for value, _, label in customer_entity_values() if not label.startswith(own)}
    return [value for value in clean_values(values) if value.casefold() not in shared]
