from __future__ import annotations

from django.contrib import admin
from guardian.admin import GuardedModelAdmin

from portal.customers.models import Customer
from portal.customers.services import EDITABLE_FIELDS


@admin.register(Customer)
class CustomerAdmin(GuardedModelAdmin):
    """Only for per-record access (Object permissions); records are edited on the portal's own pages,
    where changes are audited and the known-entity dictionary is refreshed."""

    list_display = ("name", "organisation", "tier", "owner", "restricted")
    search_fields = ("name", "organisation")
    readonly_fields = EDITABLE_FIELDS

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False
