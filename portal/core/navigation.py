"""The portal's navigation: each entry appears only for users whose role may use it.

Features add their entry here when they land, so there is never a link to a page that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.urls import reverse


@dataclass(frozen=True)
class NavEntry:
    label: str
    url_name: str
    permission: str | None = None  # None: every signed-in user
    staff_only: bool = False


NAVIGATION: list[NavEntry] = [
    NavEntry("Home", "home"),
    NavEntry("Assistant", "assistant:chat", permission="governance.use_assistant"),
    NavEntry("Knowledge", "knowledge:knowledge_base_list"),  # lists only the bases the user may view
    NavEntry("Search", "knowledge:search"),
    NavEntry("Customers", "customers:customer_list", permission="customers.view_customer"),
    NavEntry("Memory", "memory:memory_list", permission="memory.view_memoryitem"),
    NavEntry("Governance", "governance:overview", permission="governance.manage_policies"),
    NavEntry("Retention", "retention:overview", permission="retention.manage_retention"),
    NavEntry("Users", "accounts:user_list", permission="governance.manage_users"),
    NavEntry("Audit", "audit:event_list", permission="audit.review_auditevent"),
    NavEntry("AI usage", "routing:usage", permission="routing.view_usage"),
    NavEntry("Models", "routing:catalog", permission="routing.view_catalogmodel"),
    NavEntry("Local models", "ml:overview", permission="ml.train_model"),
    NavEntry("Flagged passages", "ml:flags", permission="ml.review_sensitivity"),
    NavEntry("Site admin", "admin:index", staff_only=True),
]


@dataclass(frozen=True)
class NavLink:
    label: str
    url: str
    url_name: str


def navigation_for(user: AbstractBaseUser | AnonymousUser) -> list[NavLink]:
    if not user.is_authenticated:
        return []
    links = []
    for entry in NAVIGATION:
        if entry.staff_only and not getattr(user, "is_staff", False):
            continue
        if entry.permission and not user.has_perm(entry.permission):  # type: ignore[attr-defined]
            continue
        links.append(NavLink(entry.label, reverse(entry.url_name), entry.url_name))
    return links
