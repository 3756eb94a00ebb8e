"""Reads of customer records. Visibility is decided in the query; every read of a record is audited."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, F, Func, OuterRef, Q, QuerySet, Value
from django.db.models.fields import TextField
from django.http import HttpRequest
from guardian.shortcuts import get_objects_for_user

from audit.privacy import text_fingerprint
from audit.services import audit
from portal.core.access import not_visible
from portal.core.types import UserLike
from portal.customers.models import Customer, Interaction

ERROR_NO_CUSTOMER_ACCESS = "Your role does not include access to customer records."
ERROR_IMPORT_CUSTOMERS = "Your role may not import customers."
ERROR_NO_CUSTOMER_CHANGE = "Your role may look at customer records but not change them."
ERROR_CUSTOMER_NOT_FOUND = "No such customer."
ERROR_NO_CUSTOMER_ACCESS_MANAGE = "Only the record's owner and people who see every customer may say who sees it."
VIEW_CUSTOMER_CODENAME = "view_customer"  # the per-record (guardian) permission that opens a restricted record


@dataclass(frozen=True)
class CustomerContext:
    """One customer's record and recent history, as the assistant may ground an answer in it."""

    customer_id: int
    name: str
    fields: dict[str, str]  # field name -> value (empty fields left out)
    interactions: list[dict[str, Any]] = field(default_factory=list)  # newest first
    url: str = ""


def _array_text(column: str) -> Func:
    return Func(F(column), Value(" "), function="array_to_string", output_field=TextField())


def customers_visible_to(*, user: UserLike) -> QuerySet[Customer]:
    """The customer records this user may see (empty without the role permission)."""
    if not user.is_authenticated or not user.has_perm("customers.view_customer"):
        return Customer.objects.none()
    customers = Customer.objects.all()
    if user.has_perm("customers.view_all_customers"):
        return customers
    granted = get_objects_for_user(
        user, "customers.view_customer", klass=Customer, with_superuser=False, accept_global_perms=False
    )
    return customers.filter(Q(restricted=False) | Q(owner_id=user.pk) | Q(pk__in=granted.values("pk")))


def customer_require_visible(*, user: UserLike, customer_id: int) -> None:
    """Http404 (ObjectHidden when the record exists) unless the user may see this customer; not a read."""
    if not customers_visible_to(user=user).filter(pk=customer_id).exists():
        raise not_visible(Customer, customer_id, ERROR_CUSTOMER_NOT_FOUND)


def customer_by_id(*, customer_id: int) -> Customer | None:
    """A system read (an operator's import, the demo): no user, so no permission scoping."""
    return Customer.objects.filter(pk=customer_id).first()


def customer_by_name(*, name: str) -> Customer | None:
    """A system read (the demo data): no user, so no permission scoping."""
    return Customer.objects.filter(name=name).first()


def require_customer_permission(*, user: UserLike, permission: str = "", message: str = "") -> None:
    """403 unless the user's role includes customer records and, when given, this customers permission
    (`message` says what may not be done)."""
    if not user.has_perm("customers.view_customer"):
        raise PermissionDenied(ERROR_NO_CUSTOMER_ACCESS)
    if permission and not user.has_perm(permission):
        raise PermissionDenied(message)


def may_set_customer_access(*, user: UserLike, customer: Customer) -> bool:
    """Who may restrict a record or say who may see it: its owner, and whoever sees every record."""
    return bool(user.has_perm("customers.view_all_customers") or customer.owner_id == user.pk)


def customers_access_manageable_by(*, user: UserLike) -> QuerySet[Customer]:
    """The records whose access (who may see a restricted one) this user may manage.

    The rule of the edit form's owner and "restricted" fields: a role that may change customers, and the
    record's owner or someone who sees every record. A person merely given access may not pass it on.
    """
    if not (user.has_perm("customers.view_customer") and user.has_perm("customers.change_customer")):
        return Customer.objects.none()
    visible = customers_visible_to(user=user)
    if user.has_perm("customers.view_all_customers"):
        return visible
    return visible.filter(owner_id=user.pk)


def may_manage_customer_access(*, user: UserLike, customer: Customer) -> bool:
    """Whether the Access screen of this (already visible) record is the user's to open."""
    return customers_access_manageable_by(user=user).filter(pk=customer.pk).exists()


def customer_access_link_shown(*, user: UserLike, customer: Customer) -> bool:
    """Whether the record's page links to its Access screen: a restricted record the user may manage."""
    return customer.restricted and may_manage_customer_access(user=user, customer=customer)


def customer_get_for_access(*, user: UserLike, customer_id: int, request: HttpRequest | None = None) -> Customer:
    """A record whose access the user may manage: 404 when hidden from them, 403 when they may only see it."""
    customer = _visible_or_404(user=user, customer_id=customer_id)
    if not may_manage_customer_access(user=user, customer=customer):
        raise PermissionDenied(ERROR_NO_CUSTOMER_ACCESS_MANAGE)
    audit(
        actor=user, action="customers.customer_viewed", target=customer, details={"purpose": "access"}, request=request
    )
    return customer


@dataclass(frozen=True)
class CustomerAccess:
    """Who may see one record, for its Access screen."""

    owner: Any  # User | None
    roles: list[Any]  # Group rows given view_customer on this record
    users: list[Any]  # User rows given view_customer on this record
    see_all_roles: list[str]  # names of the roles that see every customer
    see_all_others: int  # active people who see every customer other than through those roles


def customer_access(*, customer: Customer) -> CustomerAccess:
    """The grants on a record the caller may manage (obtained through `customer_get_for_access`)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission
    from guardian.shortcuts import get_groups_with_perms, get_users_with_perms

    groups: dict[Any, list[str]] = get_groups_with_perms(customer, attach_perms=True)  # type: ignore[assignment]
    users: dict[Any, list[str]] = get_users_with_perms(  # type: ignore[assignment]
        customer, attach_perms=True, with_group_users=False, with_superusers=False
    )
    role_ids = [group.pk for group, perms in groups.items() if VIEW_CUSTOMER_CODENAME in perms]
    user_ids = [user.pk for user, perms in users.items() if VIEW_CUSTOMER_CODENAME in perms]
    see_all = Permission.objects.filter(content_type__app_label="customers", codename="view_all_customers")
    see_all_roles = Group.objects.filter(permissions__in=see_all).distinct().order_by("name")
    others = (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(is_superuser=True) | Q(user_permissions__in=see_all))
        .exclude(groups__in=see_all_roles)
        .distinct()
    )
    return CustomerAccess(
        owner=customer.owner,
        roles=list(Group.objects.filter(pk__in=role_ids).order_by("name")),
        users=list(get_user_model().objects.filter(pk__in=user_ids).order_by("username")),
        see_all_roles=list(see_all_roles.values_list("name", flat=True)),
        see_all_others=others.count(),
    )


def customers_changeable_by(*, user: UserLike) -> QuerySet[Customer]:
    """The records this user may see and change: the visible ones, when the role may change customers.

    Raises PermissionDenied without the role permissions, like `customer_get_for_change` for one record.
    """
    if not user.has_perm("customers.view_customer"):
        raise PermissionDenied(ERROR_NO_CUSTOMER_ACCESS)
    if not user.has_perm("customers.change_customer"):
        raise PermissionDenied(ERROR_NO_CUSTOMER_CHANGE)
    return customers_visible_to(user=user)


def customer_list(*, user: UserLike, search: str = "", tier: str = "") -> QuerySet[Customer]:
    if not user.has_perm("customers.view_customer"):
        raise PermissionDenied(ERROR_NO_CUSTOMER_ACCESS)
    customers = customers_visible_to(user=user).select_related("owner")
    if search:
        customers = customers.annotate(
            email_text=_array_text("emails"),
            phone_text=_array_text("phones"),
            account_text=_array_text("account_numbers"),
        ).filter(
            Q(name__icontains=search)
            | Q(organisation__icontains=search)
            | Q(email_text__icontains=search)
            | Q(phone_text__icontains=search)
            | Q(account_text__icontains=search)
        )
    if tier:
        customers = customers.filter(tier=tier)
    return customers.order_by("name", "pk")


def _visible_or_404(*, user: UserLike, customer_id: int) -> Customer:
    if not user.has_perm("customers.view_customer"):
        raise PermissionDenied(ERROR_NO_CUSTOMER_ACCESS)
    customer = customers_visible_to(user=user).select_related("owner").filter(pk=customer_id).first()
    if customer is None:
        raise not_visible(Customer, customer_id, ERROR_CUSTOMER_NOT_FOUND)
    return customer


def customer_get(
    *, user: UserLike, customer_id: int, purpose: str = "page", request: HttpRequest | None = None
) -> Customer:
    """One record the user may see (404 for records hidden from them); the read is audited."""
    customer = _visible_or_404(user=user, customer_id=customer_id)
    audit(
        actor=user, action="customers.customer_viewed", target=customer, details={"purpose": purpose}, request=request
    )
    return customer


def customer_get_for_change(*, user: UserLike, customer_id: int, request: HttpRequest | None = None) -> Customer:
    customer = _visible_or_404(user=user, customer_id=customer_id)
    if not user.has_perm("customers.change_customer"):
        raise PermissionDenied(ERROR_NO_CUSTOMER_CHANGE)
    audit(actor=user, action="customers.customer_viewed", target=customer, details={"purpose": "edit"}, request=request)
    return customer


def customer_interactions(*, customer: Customer) -> QuerySet[Interaction]:
    """Interactions of a customer the caller has already obtained through a permission-checked selector."""
    return customer.interactions.select_related("staff").order_by("-occurred_at", "-pk")


def customer_fields(customer: Customer) -> dict[str, str]:
    values = {
        "name": customer.name,
        "organisation": customer.organisation,
        "emails": ", ".join(customer.emails),
        "phones": ", ".join(customer.phones),
        "postal_address": customer.postal_address,
        "account_numbers": ", ".join(customer.account_numbers),
        "tier": customer.get_tier_display(),
        "notes": customer.notes,
    }
    return {name: value for name, value in values.items() if value.strip()}


def _staff_name(interaction: Interaction) -> str:
    if interaction.staff is None:
        return ""
    return interaction.staff.get_full_name() or interaction.staff.get_username()


def _interaction_text(item: dict[str, Any]) -> str:
    staff = f", {item['staff']}" if item["staff"] else ""
    heading = f"{item['occurred_at'][:16].replace('T', ' ')} {item['channel']}{staff}: {item['summary']}"
    return heading + (f"\n{item['full_text']}" if item["full_text"] else "")


def customer_context(*, user: UserLike, customer_id: int) -> CustomerContext:
    """The record and recent interactions for the assistant; an audited read like any other.

    Raises Http404 when the user may not see this customer and PermissionDenied without the role permission.
    Which of these fields may leave the server is the egress gate's decision, not this function's.
    """
    customer = customer_get(user=user, customer_id=customer_id, purpose="assistant")
    limit = settings.CUSTOMERS_CONTEXT_INTERACTIONS
    text_limit = settings.CUSTOMERS_CONTEXT_TEXT_CHARS
    interactions = [
        {
            "interaction_id": interaction.pk,
            "channel": interaction.get_channel_display(),
            "occurred_at": interaction.occurred_at.isoformat(),
            "staff": _staff_name(interaction),
            "summary": interaction.summary,
            "full_text": interaction.full_text[:text_limit],
        }
        for interaction in customer_interactions(customer=customer)[:limit]
    ]
    fields = customer_fields(customer)
    if interactions:
        # One field, so the governance policy can keep the history local by its name ("interactions").
        fields["interactions"] = "\n\n".join(_interaction_text(item) for item in interactions)
    return CustomerContext(
        customer_id=customer.pk,
        name=customer.name,
        fields=fields,
        interactions=interactions,
        url=customer.get_absolute_url(),
    )


def customers_matching(
    *, user: UserLike, tier: str = "", search: str = "", interacted_since: Any = None
) -> QuerySet[Customer]:
    """Customers the user may see that match a workflow's filter (not a record read: callers audit what they
    do with them); ordered by id so a long list is walked in a stable order."""
    customers = customers_visible_to(user=user)
    if tier:
        customers = customers.filter(tier=tier)
    if search:
        customers = customers.filter(Q(name__icontains=search) | Q(organisation__icontains=search))
    if interacted_since is not None:
        recent = Interaction.objects.filter(customer_id=OuterRef("pk"), occurred_at__gte=interacted_since)
        customers = customers.filter(Exists(recent))
    return customers.order_by("pk")


def customer_choices_for_user(
    *, user: UserLike, search: str = "", limit: int = 20, only_ids: list[int] | None = None
) -> list[tuple[int, str]]:
    """(id, label) of customers the user may see, for pickers (memory scope, assistant). Not a record read."""
    customers = customers_visible_to(user=user)
    if only_ids is not None:
        customers = customers.filter(pk__in=only_ids)
    if search:
        customers = customers.filter(Q(name__icontains=search) | Q(organisation__icontains=search))
    return [
        (pk, f"{name} ({organisation})" if organisation else name)
        for pk, name, organisation in customers.order_by("name").values_list("pk", "name", "organisation")[:limit]
    ]


def customer_label_for(*, user: UserLike, customer_id: int | None) -> str | None:
    """The name a conversation about this customer is shown with, only for a user who may see the record
    (None otherwise); like the pickers, a label, not a read of the record."""
    if customer_id is None:
        return None
    labels = customer_choices_for_user(user=user, limit=1, only_ids=[customer_id])
    return labels[0][1] if labels else None


def customers_listed(*, user: UserLike, customer_ids: list[int], search: str, request: HttpRequest | None) -> None:
    """Audit the records a list page or search result showed (names and organisations are record data too)."""
    audit(
        actor=user,
        action="customers.customers_listed",
        object_type="customers.customer",
        # the search itself is typed text: whether there was one, and its fingerprint (audit/privacy.py)
        details={
            "customer_ids": customer_ids,
            "search": bool(search),
            **(text_fingerprint(search, name="search") if search else {}),
        },
        request=request,
    )


# ---- reads for the local prediction models (portal/ml): system reads by background tasks --------------
@dataclass(frozen=True)
class CustomerHistory:
    customer_id: int
    tier: str
    created_at: Any
    interactions: list[tuple[Any, str, str]]  # (occurred_at, channel, summary), oldest first


def customer_histories(*, customer_ids: list[int] | None = None) -> list[CustomerHistory]:
    """Every customer's tier and interaction timeline, for training and scoring prediction models (no
    permission filter: who may see a prediction is decided when it is shown, with customers_visible_to)."""
    customers = Customer.objects.order_by("pk")
    if customer_ids is not None:
        customers = customers.filter(pk__in=customer_ids)
    histories = {
        pk: CustomerHistory(customer_id=pk, tier=tier, created_at=created, interactions=[])
        for pk, tier, created in customers.values_list("pk", "tier", "created_at")
    }
    rows = Interaction.objects.filter(customer_id__in=list(histories)).order_by("customer_id", "occurred_at", "pk")
    for customer_id, occurred_at, channel, summary in rows.values_list(
        "customer_id", "occurred_at", "channel", "summary"
    ):
        histories[customer_id].interactions.append((occurred_at, channel, summary))
    return list(histories.values())
