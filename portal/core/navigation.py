"""The portal's navigation: each entry appears only for users whose role may use it.

Features add their entry here when they land, so there is never a link to a page that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse

from portal.core.types import UserLike

MANAGE = "Manage"  # the menu that holds the administrators' screens, so the bar fits on one line


@dataclass(frozen=True)
class NavEntry:
    label: str
    url_name: str
    permission: str | None = None  # None: every signed-in user
    staff_only: bool = False
    group: str = ""  # "": on the bar itself


NAVIGATION: list[NavEntry] = [
    NavEntry("Assistant", "assistant:chat", permission="governance.use_assistant"),
    NavEntry("Knowledge", "knowledge:knowledge_base_list"),  # lists only the bases the user may view
    NavEntry("Search", "knowledge:search"),
    NavEntry("Customers", "customers:customer_list", permission="customers.view_customer"),
    NavEntry("Memory", "memory:memory_list", permission="memory.view_memoryitem"),
    NavEntry("Governance", "governance:overview", permission="governance.manage_policies"),
    NavEntry("Workflows", "workflows:workflow_list"),  # lists only what the user may run (all for admins)
    NavEntry("Retention", "retention:overview", permission="retention.manage_retention"),
    NavEntry("Data requests", "subjects:request_list", group=MANAGE),  # everyone: a copy of their own data
    NavEntry("Audit", "audit:event_list", permission="audit.review_auditevent"),
    NavEntry("Users", "accounts:user_list", permission="governance.manage_users", group=MANAGE),
    NavEntry("AI usage", "routing:usage", permission="routing.view_usage", group=MANAGE),
    NavEntry("Models", "routing:catalog", permission="routing.view_catalogmodel", group=MANAGE),
    NavEntry("Budgets", "routing:budgets", permission="routing.view_budget", group=MANAGE),
    NavEntry(
        "Assistant profiles", "assistant:profile_list", permission="assistant.view_assistantprofile", group=MANAGE
    ),
    NavEntry("Local models", "ml:overview", permission="ml.train_model", group=MANAGE),
    NavEntry("Flagged passages", "ml:flags", permission="ml.review_sensitivity", group=MANAGE),
    NavEntry("Settings", "settings", permission="core.manage_parameters", group=MANAGE),
    NavEntry("Site admin", "admin:index", staff_only=True, group=MANAGE),
]


@dataclass(frozen=True)
class NavLink:
    label: str
    url: str
    url_name: str
    group: str = ""


@dataclass(frozen=True)
class NavMenu:
    """A menu on the bar and the links under it."""

    label: str
    links: list[NavLink]
    current: bool = False  # the page shown is one of its links


def navigation_for(user: UserLike) -> list[NavLink]:
    if not user.is_authenticated:
        return []
    links = []
    for entry in NAVIGATION:
        if entry.staff_only and not getattr(user, "is_staff", False):
            continue
        if entry.permission and not user.has_perm(entry.permission):
            continue
        links.append(NavLink(entry.label, reverse(entry.url_name), entry.url_name, entry.group))
    return links


def navigation_bar(links: list[NavLink], current_view: str = "") -> list[NavLink | NavMenu]:
    """The bar: ungrouped links in order, each group as one menu where its first link would be. A group of
    one link stays a plain link (a menu around one item is a click for nothing)."""
    grouped: dict[str, list[NavLink]] = {}
    for link in links:
        if link.group:
            grouped.setdefault(link.group, []).append(link)
    bar: list[NavLink | NavMenu] = []
    placed: set[str] = set()
    for link in links:
        members = grouped.get(link.group, [])
        if not link.group or len(members) < 2:
            bar.append(link)
        elif link.group not in placed:
            placed.add(link.group)
            bar.append(NavMenu(link.group, members, any(item.url_name == current_view for item in members)))
    return bar
