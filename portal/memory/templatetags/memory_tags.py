"""Template tags the assistant's answer template can use:

{% load memory_tags %}
{% memory_citations message %}   the memories that went into this answer (as the asker may still see them)
{% remember_link message %}      "Remember this" (proposes a memory from the answer)
"""

from __future__ import annotations

from typing import Any

from django import template

from portal.memory.selectors import memories_visible_to

register = template.Library()


def memory_ids_of(message: Any) -> list[int]:
    """Memory ids recorded in an answer's egress manifest, in prompt order (withheld ones included)."""
    manifest = getattr(message, "manifest", None) or {}
    ids: list[int] = []
    for part in manifest.get("parts", []):
        memory_id = (part.get("source") or {}).get("memory_id") if part.get("kind") == "memory" else None
        if isinstance(memory_id, int) and memory_id not in ids:
            ids.append(memory_id)
    return ids


@register.inclusion_tag("memory/_memory_citations.html", takes_context=True)
def memory_citations(context: template.Context, message: Any) -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    ids = memory_ids_of(message)
    memories = []
    if ids and user is not None:
        found = {m.pk: m for m in memories_visible_to(user=user).filter(pk__in=ids)}
        memories = [found[pk] for pk in ids if pk in found]
    gone = len(ids) - len(memories)
    return {"memories": memories, "gone": gone}


@register.inclusion_tag("memory/_remember_link.html", takes_context=True)
def remember_link(context: template.Context, message: Any) -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    allowed = bool(
        user is not None
        and user.has_perm("memory.add_memoryitem")
        and getattr(message, "role", "") == "assistant"
        and getattr(message, "content", "")
    )
    return {"message": message, "allowed": allowed}
