"""Where an audited object can be seen: object_type -> URL, registered by the app that owns the object.

    from audit import links
    links.register("knowledge.document", lambda object_id: reverse("knowledge:document", args=[object_id]))
    links.register_url_name("assistant.conversation", "assistant:conversation", "conversation_id")

`object_url()` returns a link only when the URL exists (the app is installed and the name resolves), so
the review pages never show a dead link; the page behind it still applies its own permission checks.
"""

from __future__ import annotations

from collections.abc import Callable

from django.urls import NoReverseMatch, reverse

UrlBuilder = Callable[[str], str | None]

_BUILDERS: dict[str, UrlBuilder] = {}


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


def object_url(object_type: str, object_id: str | int) -> str | None:
    builder = _BUILDERS.get(object_type)
    if builder is None or object_id in ("", None):
        return None
    try:
        return builder(str(object_id))
    except (NoReverseMatch, ValueError):
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


def related_links(details: object) -> list[tuple[str, str, str]]:
    """(object type, id, url) for every id in `details` (top level) that has a link (at most 25)."""
    if not isinstance(details, dict):
        return []
    found = []
    for key, object_type in DETAIL_KEY_TYPES.items():
        values = details.get(key)
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, int | str) and not isinstance(value, bool):
                url = object_url(object_type, value)
                if url:
                    found.append((object_type, str(value), url))
    return found[:MAX_RELATED_LINKS]
