"""Where an audited object can be seen: object_type -> URL, registered by the app that owns the object.

    from audit import links
    links.register("knowledge.document", lambda object_id: reverse("knowledge:document", args=[object_id]))
    links.register_url_name("assistant.conversation", "assistant:conversation", "conversation_id")

`object_url()` returns a link only when the URL exists (the app is installed and the name resolves), so
the review pages never show a dead link. Given the viewer, it also returns one only when the viewer may
open that page: the owning app registers a check with `register_visibility()` (its own permission-scoped
query), and a type without a check gets no link at all, so an auditor is never sent to another person's
conversation or export to meet a 403 or 404. The page behind a link still applies its own checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404
from django.urls import NoReverseMatch, reverse

UrlBuilder = Callable[[str], str | None]
VisibilityCheck = Callable[[Any, str], bool]  # (viewer, object id) -> may the viewer open the object's page?

_BUILDERS: dict[str, UrlBuilder] = {}
_VISIBLE: dict[str, VisibilityCheck] = {}


def register(object_type: str, builder: UrlBuilder) -> None:
    _BUILDERS[object_type] = builder


def register_url_name(object_type: str, url_name: str, kwarg: str | None = None, *, numeric: bool = True) -> None:
    """Link `object_type` to the URL `url_name`, passing the object id positionally or as `kwarg`."""

    def build(object_id: str) -> str | None:
        value: str | int = object_id
        if numeric:
            if not object_id.isdigit():
                return None
            value = int(object_id)
        return reverse(url_name, kwargs={kwarg: value}) if kwarg else reverse(url_name, args=[value])

    register(object_type, build)


def register_visibility(object_type: str, check: VisibilityCheck) -> None:
    _VISIBLE[object_type] = check


def numeric_check(visible_ids: Callable[[Any], QuerySet[Any]]) -> VisibilityCheck:
    """A check from a selector that returns what the viewer may see: the object's id must be in it."""

    def check(viewer: Any, object_id: str) -> bool:
        return object_id.isdigit() and visible_ids(viewer).filter(pk=int(object_id)).exists()

    return check


def permission_check(permission: str) -> VisibilityCheck:
    return lambda viewer, object_id: bool(viewer.has_perm(permission))


def object_url(object_type: str, object_id: str | int, *, viewer: Any = None) -> str | None:
    """The page of this object, or None; with `viewer`, None also unless the viewer may open it."""
    builder = _BUILDERS.get(object_type)
    if builder is None or object_id in ("", None):
        return None
    try:
        url = builder(str(object_id))
    except (NoReverseMatch, ValueError):
        return None
    if url is None or viewer is None:
        return url
    check = _VISIBLE.get(object_type)
    if check is None or not getattr(viewer, "is_authenticated", False):
        return None
    try:
        return url if check(viewer, str(object_id)) else None
    except (PermissionDenied, Http404):
        return None


def registered_types() -> list[str]:
    return sorted(_BUILDERS)


# Objects of the apps that exist today; later apps register theirs in their AppConfig.ready().
register_url_name("auth.user", "accounts:user_edit", "user_id")
register_url_name("audit.auditexport", "audit:export_status", "export_id")
# Objects of apps being built alongside; harmless until their URLs exist (object_url() checks).
register_url_name("assistant.conversation", "assistant:conversation", "conversation_id")
register_url_name("customers.customer", "customers:customer_detail", "customer_id")
register_url_name("knowledge.document", "knowledge:document_detail", "pk")
register_url_name("knowledge.knowledgebase", "knowledge:knowledge_base_detail", "pk")
register_url_name("governance.policyversion", "governance:version_detail", "version_id")
register_url_name("governance.termlist", "governance:term_list_edit", "term_list_id")
register_url_name("memory.memoryitem", "memory:memory_detail", "memory_id")

# Who may open the pages of audit's own objects and of the screens guarded by a role permission alone; the
# apps that own per-object access (conversations, customers, documents, memories) register theirs.
register_visibility("auth.user", permission_check("governance.manage_users"))
register_visibility("governance.policyversion", permission_check("governance.manage_policies"))
register_visibility("governance.termlist", permission_check("governance.manage_policies"))


def _own_exports(viewer: Any) -> QuerySet[Any]:
    from audit.selectors import audit_exports_for_user

    return audit_exports_for_user(user=viewer)  # private to whoever asked (PermissionDenied without export)


register_visibility("audit.auditexport", numeric_check(_own_exports))

# Ids inside an event's details that name another object (an answer names its conversation, a search its
# documents ...): the detail page links each one whose type has a registered URL.
DETAIL_KEY_TYPES: dict[str, str] = {
    "conversation_id": "assistant.conversation",
    "message_id": "assistant.message",
    "document_id": "knowledge.document",
    "document_ids": "knowledge.document",
    "knowledge_base_id": "knowledge.knowledgebase",
    "customer_id": "customers.customer",
    "memory_id": "memory.memoryitem",
    "policy_version_id": "governance.policyversion",
    "profile_id": "assistant.assistantprofile",
    "export_id": "audit.auditexport",
}


MAX_RELATED_LINKS = 25


def related_links(details: object, *, viewer: Any = None) -> list[tuple[str, str, str]]:
    """(object type, id, url) for every id in `details` (top level) that has a link (at most 25); with
    `viewer`, only links the viewer may open."""
    if not isinstance(details, dict):
        return []
    found = []
    for key, object_type in DETAIL_KEY_TYPES.items():
        values = details.get(key)
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, int | str) and not isinstance(value, bool):
                url = object_url(object_type, value, viewer=viewer)
                if url:
                    found.append((object_type, str(value), url))
    return found[:MAX_RELATED_LINKS]
