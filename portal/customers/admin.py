from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.admin import AuditedGuardedModelAdmin
from portal.customers.models import Customer
from portal.customers.selectors import customers_visible_to


@admin.register(Customer)
class CustomerAdmin(AuditedGuardedModelAdmin):
    """Only for per-record access (Object permissions, audited as "customers.customer_access_changed"); the
    portal's own Access page (views.customer_access_view) does the same for a record's owner.

    Records are edited on the portal's own pages, where changes are audited and the known-entity
    dictionary is refreshed; this screen shows no contact details, notes or account numbers at all.
    """

    list_display = ("name", "organisation", "tier", "owner", "restricted")
    search_fields = ("name", "organisation")
    fields = ("name", "organisation", "tier", "owner", "restricted")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Customer]:
        # the same records the portal shows this user (restricted ones only to those who may see them)
        return customers_visible_to(user=request.user).select_related("owner")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
