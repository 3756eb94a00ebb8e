"""A conversation as a file the user takes away: Markdown, or one standalone HTML page that prints to PDF.

The HTML page must be safe when opened from disk, outside the portal and its CSP: answers (model output,
untrusted) go through the same nh3 sanitizing as in the chat, everything else is escaped by the template,
and the page loads nothing (no script, no image, no stylesheet or font from elsewhere).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import slugify

from portal.assistant.rendering import render_markdown
from portal.assistant.selectors import ConversationExport, ExportCitation, ExportMessage

FORMAT_MARKDOWN = "md"
FORMAT_HTML = "html"
FORMATS = (FORMAT_MARKDOWN, FORMAT_HTML)
ERROR_EXPORT_FORMAT = "Unknown export format: choose md (Markdown) or html."
CONTENT_TYPES = {FORMAT_MARKDOWN: "text/markdown; charset=utf-8", FORMAT_HTML: "text/html; charset=utf-8"}
HTML_TEMPLATE = "assistant/export.html"
FILENAME_LENGTH = 80


def filename(export: ConversationExport, fmt: str) -> str:
    """ASCII only (a safe Content-Disposition without encoding); a title with no Latin letters falls back."""
    stem = slugify(export.title)[:FILENAME_LENGTH].strip("-_") or f"conversation-{export.conversation_id}"
    return f"{stem}.{fmt}"


def _when(moment: datetime) -> str:
    local = timezone.localtime(moment)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or ''}".strip()


def _source(citation: ExportCitation) -> str:
    where = f"{citation.title}, {citation.pages}" if citation.pages else citation.title
    return f"{where} ({citation.knowledge_base})" if citation.knowledge_base else where


def _markdown_message(message: ExportMessage) -> list[str]:
    lines = [f"**{'Assistant' if message.is_answer else 'You'}** · {_when(message.created_at)}", ""]
    if message.status_label:
        lines += [f"*{message.status_label}*", ""]
    if message.content and message.is_answer:
        lines += [message.content.strip(), ""]
    elif message.content:  # typed text: its line breaks kept (a markdown reader would join the lines)
        lines += ["  \n".join(message.content.strip().splitlines()), ""]
    if message.error:
        lines += [message.error.strip(), ""]
    if message.citations:
        lines += ["Sources:", ""]
        lines += [f"- [{citation.number}] {_source(citation)}" for citation in message.citations]
        lines.append("")
    return lines


def as_markdown(export: ConversationExport) -> str:
    lines = [
        f"# {export.title}",
        "",
        f"Assistant: {export.profile_name}  ",
        f"Created: {_when(export.created_at)}",
        "",
    ]
    for message in export.messages:
        lines += ["---", "", *_markdown_message(message)]
    return "\n".join(lines).rstrip("\n") + "\n"


def _source_anchor(message: ExportMessage, number: int) -> str:
    return f"source-{message.message_id}-{number}"


def _html_message(message: ExportMessage) -> dict[str, Any]:
    # [n] in an answer links to its source in this same page: the portal's own URLs do not work from a file
    anchors = {citation.number: "#" + _source_anchor(message, citation.number) for citation in message.citations}
    return {
        "message": message,
        "when": _when(message.created_at),
        "answer_html": render_markdown(message.content, anchors) if message.is_answer else "",
        "sources": [
            {"citation": citation, "anchor": _source_anchor(message, citation.number), "label": _source(citation)}
            for citation in message.citations
        ],
    }


def as_html(export: ConversationExport) -> str:
    context = {
        "export": export,
        "created": _when(export.created_at),
        "messages": [_html_message(message) for message in export.messages],
    }
    return render_to_string(HTML_TEMPLATE, context)
