from __future__ import annotations

import json
from typing import Any

from django import template
from django.urls import Resolver404, resolve, reverse
from django.utils.safestring import SafeString

from portal.assistant.rendering import render_markdown

register = template.Library()


@register.filter
def assistant_markdown(message: Any) -> SafeString:
    """The message text as sanitized HTML, with [n] linked to the cited passage's page (through the answer's
    source route, which counts the open as a ranker signal)."""
    urls = {
        int(citation["number"]): reverse("assistant:citation_open", args=[message.pk, int(citation["number"])])
        for citation in message.citations or []
        if citation.get("url") and citation.get("cited", True) and message.pk
    }
    return render_markdown(message.content, urls)


@register.simple_tag
def answer_place(message: Any) -> Any:
    """Which attempt an answer is ("2 of 3") and whether a new one may be asked for."""
    from portal.assistant.selectors import answer_place as place

    return place(message=message)


AUDIT_REVIEW_PERMISSION = "audit.review_auditevent"


@register.simple_tag(takes_context=True)
def audit_events_url(context: template.Context, message: Any) -> str:
    """Link to the audit events of this answer, for those who may open them (the page answers 403 otherwise)."""
    user = context.get("user")
    if user is None or not user.is_authenticated or not user.has_perm(AUDIT_REVIEW_PERMISSION):
        return ""
    try:
        resolve("/audit/")
    except Resolver404:
        return ""
    return f"/audit/?object_type=assistant.message&object_id={message.pk}"


@register.filter
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@register.filter
def findings_summary(value: Any) -> str:
    """Data classes found (a part's "findings", or a manifest's "pseudonymized" / "redacted"), with counts."""
    findings = value.get("findings") if isinstance(value, dict) and "kind" in value else value
    if not findings:
        return "none"
    if isinstance(findings, dict):
        return ", ".join(f"{name} ×{count}" for name, count in sorted(findings.items()))
    names = [str(item.get("data_class", item)) if isinstance(item, dict) else str(item) for item in findings]
    return ", ".join(sorted(set(names)))


@register.filter
def attempt_label(attempt: Any) -> str:
    """One model attempt of an answer, in words, whatever shape an older or newer row gives it."""
    if not isinstance(attempt, dict):
        return str(attempt)
    name = str(attempt.get("model") or attempt.get("model_key") or "a model")
    outcome = str(attempt.get("outcome") or "")
    error = str(attempt.get("error") or "")
    label = f"{name} {outcome}".strip()
    return f"{label}: {error}" if error else label


@register.simple_tag(takes_context=True)
def chat_message(context: template.Context, message: Any) -> str:
    """One message of a conversation; a message that cannot be rendered never takes the page down with it."""
    from portal.assistant.presentation import message_html

    return message_html(context.get("request"), message)


@register.filter
def model_names(keys: Any) -> list[str]:
    """Catalog keys of a route ("model:1", "offline") as the models' names, in the route's order."""
    from portal.routing.selectors import model_display_names

    if not isinstance(keys, list):
        return []
    wanted = [str(key) for key in keys]
    names = model_display_names(keys=wanted)
    return [names.get(key, key) for key in wanted]


@register.filter
def kept_local(message: Any) -> bool:
    """True when no part of this answer's prompt left the server: the gate cleared it for a local model
    only, or every model actually tried was the built-in offline one (a cloud model that was tried and
    failed may have received the prompt, so that does not count)."""
    manifest = message.manifest if isinstance(message.manifest, dict) else {}
    if manifest.get("local_only"):
        return True
    usage = message.usage if isinstance(message.usage, dict) else {}
    tried = [
        attempt
        for attempt in usage.get("attempts") or []
        if isinstance(attempt, dict) and attempt.get("outcome") != "skipped"
    ]
    if tried:
        return all(attempt.get("provider") == "offline" for attempt in tried)
    return usage.get("provider") == "offline"


@register.simple_tag(takes_context=True)
def customer_label(context: template.Context, conversation: Any) -> str | None:
    """The customer a conversation is about, by name, if the viewer may see that record."""
    from portal.customers.selectors import customer_label_for

    customer_id = getattr(conversation, "customer_id", None)
    user = context.get("user")
    if customer_id is None or user is None:
        return None
    return customer_label_for(user=user, customer_id=customer_id)
