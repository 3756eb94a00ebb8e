"""Types every app shares: the request the middleware hands a view, and the user a selector is asked for."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

# Whom a selector or service is asked for: a signed-in user, or nobody (which sees nothing).
UserLike = User | AnonymousUser


class PortalRequest(HttpRequest):
    """A request that went through the authentication and htmx middleware."""

    user: User
    htmx: HtmxDetails
