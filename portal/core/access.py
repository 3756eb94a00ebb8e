"""Refusals that the audit trail records: "that object exists, but not for you".

Selectors answer 404 to people who may not see an object, so its existence is not revealed (as
healthchecks does). For the audit trail a read of somebody else's object is a different thing from a
typo in a URL, so selectors raise `ObjectHidden` (still a 404 for the user) when the object exists, and a
plain Http404 when it does not; `audit.middleware.AccessDeniedAuditMiddleware` records the first.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import models
from django.http import Http404

ModelT = TypeVar("ModelT", bound=models.Model)


class ObjectHidden(Http404):
    """The object exists but the user may not see it; shown to them exactly like a missing one."""


def not_visible(model: type[models.Model], pk: Any, message: str) -> Http404:
    """The 404 to raise for `pk` of `model` that the user's scoped query did not return."""
    exists = pk is not None and model._default_manager.filter(pk=pk).exists()
    return ObjectHidden(message) if exists else Http404(message)


def visible_get(scoped: models.QuerySet[ModelT], pk: Any, message: str) -> ModelT:
    """The row `pk` of a query already scoped to what the user may see, or the 404 of `not_visible`."""
    found = scoped.filter(pk=pk).first()
    if found is None:
        raise not_visible(scoped.model, pk, message)
    return found
