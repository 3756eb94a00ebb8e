"""Refused access is an audited event: `audit.access_denied`.

Recorded: every 403 (too little access, a failed CSRF check), every read or write of an object that exists
but is hidden from the user (`portal.core.access.ObjectHidden`, a 404 to them), and every refused write
(a 404 to a POST, PUT, PATCH or DELETE). Not recorded: plain 404s of reads (a mistyped URL says nothing
about anyone's data) and static files.

A scan must not flood the chain, so refusals are rate-limited in the cache: one event per user (or, for
visitors who are not signed in, per address), method and path per window, and at most a budget of events
per user per minute; the event that exhausts the budget says so. The cache is per process unless a shared
cache is configured, so with N web processes the budget is at most N times the setting.

The details carry the method, the path without its query string (ids only, no typed text), the status,
the view's name and why; never the request body.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseBase

from audit.models import Outcome
from audit.services import audit, client_address
from portal.core.access import ObjectHidden

logger = logging.getLogger(__name__)

ACTION = "audit.access_denied"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_REFUSAL_ATTRIBUTE = "_audit_refusal"
REASON_PERMISSION = "permission"  # PermissionDenied: signed in, but the role or grant is missing
REASON_HIDDEN = "hidden"  # the object exists and is not visible to this user
REASON_NOT_FOUND = "not_found"  # a write to an object that does not exist
REASON_REFUSED = "refused"  # a 403 answered without an exception (a failed CSRF check, say)


def refusal_reason(request: HttpRequest, response: HttpResponseBase) -> str | None:
    """Why this response is an audited refusal, or None when it is not one."""
    raised = getattr(request, _REFUSAL_ATTRIBUTE, None)
    if raised is not None:
        if raised == REASON_NOT_FOUND and request.method not in UNSAFE_METHODS:
            return None
        return str(raised)
    if response.status_code == 403:
        return REASON_REFUSED
    if response.status_code == 404 and request.method in UNSAFE_METHODS:
        return REASON_NOT_FOUND
    return None


def _allowed_by_rate_limit(who: str, method: str, path: str) -> tuple[bool, bool]:
    """(record this refusal, it is the last one this minute's budget allows)."""
    path_key = hashlib.sha256(f"{who}|{method}|{path}".encode()).hexdigest()[:32]
    if not cache.add(f"audit-denied:{path_key}", 1, timeout=settings.AUDIT_ACCESS_DENIED_WINDOW_SECONDS):
        return False, False
    minute_key = f"audit-denied-budget:{hashlib.sha256(who.encode()).hexdigest()[:32]}:{int(time.time() // 60)}"
    cache.add(minute_key, 0, timeout=120)
    try:
        used = cache.incr(minute_key)
    except ValueError:  # expired between add and incr
        cache.add(minute_key, 1, timeout=120)
        used = 1
    budget = settings.AUDIT_ACCESS_DENIED_MAX_PER_MINUTE
    return used <= budget, used == budget


def record_refusal(request: HttpRequest, response: HttpResponseBase, reason: str) -> None:
    user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    who = f"user:{user.pk}" if signed_in else f"address:{client_address(request)}"  # type: ignore[union-attr]
    method = request.method or ""
    record, last = _allowed_by_rate_limit(who, method, request.path)
    if not record:
        return
    match = getattr(request, "resolver_match", None)
    details: dict[str, Any] = {
        "method": method,
        "path": request.path[:300],
        "status": response.status_code,
        "reason": reason,
        "view": (match.view_name if match is not None else "")[:100],
    }
    if last:
        details["rate_limited"] = "this minute's budget is used up: further refusals are not recorded"
    try:
        audit(
            actor=user if signed_in else None,
            action="audit.access_denied",
            outcome=Outcome.DENIED,
            details=details,
            request=request,
        )
    except Exception:  # noqa: BLE001 - the refusal stands even if its record cannot be written
        logger.exception("audit: could not record a refused request")


class AccessDeniedAuditMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        response = self.get_response(request)
        assert isinstance(response, HttpResponseBase)
        reason = refusal_reason(request, response)
        if reason is not None:
            record_refusal(request, response, reason)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response: HttpResponseBase = await self.get_response(request)  # type: ignore[misc]
        reason = refusal_reason(request, response)
        if reason is not None:
            await sync_to_async(record_refusal)(request, response, reason)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        """Remember what the view raised; Django then turns it into the 403/404 response as usual."""
        if isinstance(exception, PermissionDenied):
            setattr(request, _REFUSAL_ATTRIBUTE, REASON_PERMISSION)
        elif isinstance(exception, ObjectHidden):
            setattr(request, _REFUSAL_ATTRIBUTE, REASON_HIDDEN)
        elif isinstance(exception, Http404):
            setattr(request, _REFUSAL_ATTRIBUTE, REASON_NOT_FOUND)
