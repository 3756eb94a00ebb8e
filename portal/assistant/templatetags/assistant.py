from __future__ import annotations

import json
from typing import Any

from django import template
from django.urls import Resolver404, resolve
from django.utils.safestring import SafeString

from portal.assistant.rendering import render_markdown

register = template.Library()


@register.filter
def assistant_markdown(message: Any) -> SafeString:
    """The message text as sanitized HTML, with [n] linked to the cited passage's page."""
    urls = {int(citation["number"]): str(citation.get("url", "")) for citation in message.citations or []}
    return render_markdown(message.content, urls)


@register.simple_tag
def audit_events_url(message: Any) -> str:
    """Link to the audit events of this answer, only once the audit review page exists."""
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
