from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.assistant.selectors import may_use_assistant, profiles_for_user
from portal.assistant.services import conversation_create
from portal.core.types import PortalRequest
from portal.core.views import form_save_or_show
from portal.customers.csv_io import (
    ImportReport,
    customers_export,
    customers_import,
    interactions_import,
    interactions_import_require_permission,
)
from portal.customers.forms import (
    CustomerAccessForm,
    CustomerFilterForm,
    CustomerForm,
    CustomerImportForm,
    InteractionForm,
    InteractionImportForm,
)
from portal.customers.selectors import (
    ERROR_IMPORT_CUSTOMERS,
    customer_access,
    customer_access_link_shown,
    customer_get,
    customer_get_for_access,
    customer_get_for_change,
    customer_interactions,
    customer_list,
    customers_listed,
    may_set_customer_access,
    require_customer_permission,
)
from portal.customers.services import (
    ERROR_ADD_CUSTOMER,
    ERROR_ADD_INTERACTION,
    customer_access_grant,
    customer_access_revoke,
    customer_create,
    customer_delete,
    customer_update,
    interaction_create,
)

CUSTOMERS_PER_PAGE = 50


def _assistant_profiles(request: PortalRequest) -> list[Any]:
    """Assistant profiles this user may ask with (none when their role may not use the assistant)."""
    if not may_use_assistant(user=request.user):
        return []
    return list(profiles_for_user(user=request.user))


@login_required
@require_GET
def customer_list_view(request: PortalRequest) -> HttpResponse:
    form = CustomerFilterForm(request.GET or None)
    search = tier = ""
    if form.is_valid():
        search, tier = form.cleaned_data["q"], form.cleaned_data["tier"]
    customers = customer_list(user=request.user, search=search, tier=tier)
    page = Paginator(customers, CUSTOMERS_PER_PAGE).get_page(request.GET.get("page"))
    customers_listed(user=request.user, customer_ids=[c.pk for c in page], search=search, request=request)
    template = "customers/customer_list.html#customer-table" if request.htmx else "customers/customer_list.html"
    return render(request, template, {"form": form, "page": page, "search": search})


@login_required
@require_GET
def customer_detail_view(request: PortalRequest, customer_id: int) -> HttpResponse:
    customer = customer_get(user=request.user, customer_id=customer_id, request=request)
    interaction_form = None
    if request.user.has_perm("customers.add_interaction"):
        interaction_form = InteractionForm(
            initial={"occurred_at": timezone.localtime().replace(second=0, microsecond=0)}
        )
    context = {
        "customer": customer,
        "interactions": customer_interactions(customer=customer),
        "interaction_form": interaction_form,
        "assistant_profiles": _assistant_profiles(request),
        "can_manage_access": customer_access_link_shown(user=request.user, customer=customer),
    }
    return render(request, "customers/customer_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def customer_create_view(request: PortalRequest) -> HttpResponse:
    require_customer_permission(user=request.user, permission="customers.add_customer", message=ERROR_ADD_CUSTOMER)
    form = CustomerForm(request.POST or None, initial={"owner": request.user.pk})

    def save() -> HttpResponse:
        customer = customer_create(actor=request.user, request=request, **form.cleaned_data)
        messages.success(request, f"Customer {customer.name} added.")
        return redirect(customer)

    return form_save_or_show(
        request, form, save=save, template="customers/customer_form.html", context={"creating": True}
    )


@login_required
@require_http_methods(["GET", "POST"])
def customer_edit_view(request: PortalRequest, customer_id: int) -> HttpResponse:
    customer = customer_get_for_change(user=request.user, customer_id=customer_id, request=request)
    can_set_access = may_set_customer_access(user=request.user, customer=customer)
    form = CustomerForm(request.POST or None, initial=CustomerForm.initial_for(customer), can_set_access=can_set_access)

    def save() -> HttpResponse:
        customer_update(actor=request.user, customer=customer, request=request, **form.cleaned_data)
        messages.success(request, f"Customer {customer.name} saved.")
        return redirect(customer)

    context = {"customer": customer, "creating": False}
    return form_save_or_show(request, form, save=save, template="customers/customer_form.html", context=context)


@login_required
@require_POST
def customer_delete_view(request: PortalRequest, customer_id: int) -> HttpResponse:
    customer = customer_get(user=request.user, customer_id=customer_id, purpose="delete", request=request)
    name = customer.name
    try:
        customer_delete(actor=request.user, customer=customer, request=request)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("customers:customer_detail", customer_id=customer_id)
    messages.success(request, f"Customer {name} deleted, with their interactions and memories.")
    return redirect("customers:customer_list")


@login_required
@require_POST
def interaction_create_view(request: PortalRequest, customer_id: int) -> HttpResponse:
    customer = customer_get(user=request.user, customer_id=customer_id, purpose="record interaction", request=request)
    require_customer_permission(
        user=request.user, permission="customers.add_interaction", message=ERROR_ADD_INTERACTION
    )
    form = InteractionForm(request.POST)
    if form.is_valid():
        try:
            interaction_create(actor=request.user, customer=customer, request=request, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, "Interaction recorded.")
            return redirect(customer)
    context = {
        "customer": customer,
        "interactions": customer_interactions(customer=customer),
        "interaction_form": form,
        "assistant_profiles": _assistant_profiles(request),
        "can_manage_access": customer_access_link_shown(user=request.user, customer=customer),
    }
    return render(request, "customers/customer_detail.html", context, status=400)


def _access_message(*, granting: bool, changed: bool, form: CustomerAccessForm) -> str:
    data = form.cleaned_data
    who = f"the role {data['group'].name}" if data["group"] is not None else data["user"].get_username()
    if granting:
        return f"Access granted to {who}." if changed else f"Nothing to change: {who} could already see it."
    return f"Access revoked from {who}." if changed else f"Nothing to change: {who} had no access of their own."


@login_required
@require_http_methods(["GET", "POST"])
def customer_access_view(request: PortalRequest, customer_id: int) -> HttpResponse:
    """Who may see a restricted record: its owner, the roles and people given it (a revoke button each), the
    roles that see every record, and a form to grant. Open records only say so (and list leftover grants)."""
    customer = customer_get_for_access(user=request.user, customer_id=customer_id, request=request)
    form = CustomerAccessForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            granting = form.cleaned_data["action"] == "grant"
            change = customer_access_grant if granting else customer_access_revoke
            try:
                changed = change(
                    actor=request.user,
                    customer=customer,
                    group=form.cleaned_data["group"],
                    user=form.cleaned_data["user"],
                    request=request,
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(request, _access_message(granting=granting, changed=changed, form=form))
                return redirect("customers:customer_access", customer_id=customer.pk)
        status = 400
    context = {"customer": customer, "form": form, "access": customer_access(customer=customer)}
    return render(request, "customers/customer_access.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def customer_import_view(request: PortalRequest) -> HttpResponse:
    require_customer_permission(
        user=request.user, permission="customers.import_customer", message=ERROR_IMPORT_CUSTOMERS
    )
    return _import_page(request, CustomerImportForm, customers_import, "customers/customer_import.html")


def _import_page(
    request: PortalRequest,
    form_class: type[CustomerImportForm] | type[InteractionImportForm],
    run_import: Any,
    template: str,
    context: dict[str, Any] | None = None,
) -> HttpResponse:
    """An upload form that runs `run_import` on the posted CSV and shows its report (400 when it failed)."""
    form = form_class(request.POST or None, request.FILES or None)
    report: ImportReport | None = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            upload = form.cleaned_data["file"]
            # One byte over the limit is enough for the import to refuse the file as too large.
            data = upload.read(settings.CUSTOMERS_IMPORT_MAX_BYTES + 1)
            report = run_import(actor=request.user, data=data, filename=upload.name or "", request=request)
            status = 200 if report.ok else 400
        else:
            status = 400
    return render(request, template, {"form": form, "report": report, **(context or {})}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def interaction_import_view(request: PortalRequest) -> HttpResponse:
    interactions_import_require_permission(actor=request.user)
    return _import_page(
        request,
        InteractionImportForm,
        interactions_import,
        "customers/interaction_import.html",
        {"site_time_zone": settings.TIME_ZONE},
    )


@login_required
@require_GET
def customer_export_view(request: PortalRequest) -> StreamingHttpResponse:
    require_customer_permission(user=request.user)
    lines = customers_export(actor=request.user, search=request.GET.get("q", "")[:100], request=request)
    filename = f"customers-{timezone.now():%Y%m%d-%H%M}.csv"
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
@require_POST
def customer_ask_view(request: PortalRequest, customer_id: int) -> HttpResponse:
    """Start an assistant conversation about this customer (the assistant then grounds answers in the record)."""
    customer = customer_get(
        user=request.user, customer_id=customer_id, purpose="assistant conversation", request=request
    )
    profiles = {profile.pk: profile for profile in _assistant_profiles(request)}
    profile_id = request.POST.get("profile", "")
    if not profiles:
        raise PermissionDenied("Your role may not use the assistant.")
    if not profile_id.isdigit() or int(profile_id) not in profiles:
        raise Http404("No such assistant profile.")
    conversation = conversation_create(actor=request.user, profile=profiles[int(profile_id)], customer_id=customer.pk)
    return redirect("assistant:conversation", conversation_id=conversation.pk)
