"""Web server access logs without query strings: `/knowledge/search/?q=…` carries what someone typed.

uvicorn's access log (and runserver's) writes the request path with its query string. The filter keeps the
path and replaces the query by `?[redacted]`, so the log still shows which page was asked for and its status.
It is attached to those loggers when the ASGI or WSGI application is loaded, which is after the server has
configured its logging (uvicorn, also with --workers or --reload; runserver), and again when a server
configures it after that: a logger keeps its filters through `logging.config.dictConfig`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

ACCESS_LOGGERS = ("uvicorn.access", "django.server", "gunicorn.access")
REDACTED = "?[redacted]"
_QUERY = re.compile(r"\?[^\s\"']*")


def redact_query_strings(value: str) -> str:
    return _QUERY.sub(REDACTED, value)


class QueryStringRedactingFilter(logging.Filter):
    """Rewrites the record's message arguments (and message) so no query string reaches a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(arg) for arg in record.args)
        elif isinstance(record.args, dict):  # gunicorn's access log passes its "atoms" as a mapping
            record.args = {key: _redacted(value) for key, value in record.args.items()}
        if isinstance(record.msg, str) and "?" in record.msg:
            record.msg = redact_query_strings(record.msg)
        return True


def _redacted(value: Any) -> Any:
    if not isinstance(value, str) or "?" not in value:
        return value
    if value.startswith("/"):  # a path argument (uvicorn's): everything after "?" is the query
        return value.split("?", 1)[0] + REDACTED
    return redact_query_strings(value)  # a request line ("GET /path?q=… HTTP/1.1", runserver's)


def access_log_redaction_install() -> None:
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, QueryStringRedactingFilter) for existing in logger.filters):
            logger.addFilter(QueryStringRedactingFilter())
