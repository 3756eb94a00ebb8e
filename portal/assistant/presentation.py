"""Rendering one chat message, contained: a stored message the template cannot show (a row written by an
older version, a bug) is replaced by a short notice, so its conversation stays readable and deletable."""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.html import format_html
from django.utils.safestring import SafeString

logger = logging.getLogger(__name__)

MESSAGE_TEMPLATE = "assistant/_message.html"
NOTICE_UNRENDERABLE = "This message could not be displayed. The rest of the conversation is unaffected."


def message_html(request: HttpRequest | None, message: Any) -> SafeString:
    try:
        return SafeString(render_to_string(MESSAGE_TEMPLATE, {"message": message}, request=request))
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
