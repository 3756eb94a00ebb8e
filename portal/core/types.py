from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class PortalRequest(HttpRequest):
    """A request that went through the authentication and htmx middleware."""

    user: User
    htmx: HtmxDetails
