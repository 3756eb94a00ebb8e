"""Rendering one chat message, contained: a stored message the template cannot show (a row written by an
older version, a bug) is replaced by a short notice, so its conversation stays readable and deletable."""

from __future__ import annotations

import logging
from typing import Any, cast

from django.http import HttpRequest
from django.template import Context, engines
from django.template.backends.django import DjangoTemplates
from django.template.context_processors import csrf
from django.utils.html import format_html
from django.utils.safestring import SafeString

logger = logging.getLogger(__name__)

MESSAGE_TEMPLATE = "assistant/_message.html"
NOTICE_UNRENDERABLE = "This message could not be displayed. The rest of the conversation is unaffected."


def render_message_template(context: dict[str, Any]) -> str:
    return str(cast(DjangoTemplates, engines["django"]).engine.get_template(MESSAGE_TEMPLATE).render(Context(context)))


def message_html(request: HttpRequest | None, message: Any) -> SafeString:
    """One message as HTML. The template reads only the message, the request and its user (in its tags) and the
    CSRF token, so it is rendered with those alone: the site's context processors (the navigation among
    them) would run again for every message of a page and twice for every streamed answer."""
    try:
        context: dict[str, Any] = {"message": message}
        if request is not None:
            context.update(request=request, user=getattr(request, "user", None), **csrf(request))
        return SafeString(render_message_template(context))
    except Exception:  # noqa: BLE001 - one bad row must not make every page of its conversation a 500
        logger.exception("assistant: message %s could not be rendered", getattr(message, "pk", None))
        return format_html(
            '<li class="chat-message chat-{} status-unrenderable" id="message-{}" data-message-id="{}">'
            '<p class="error chat-error" role="alert">{}</p></li>',
            getattr(message, "role", "assistant"),
            message.pk,
            message.pk,
            NOTICE_UNRENDERABLE,
        )
