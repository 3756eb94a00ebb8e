from __future__ import annotations

# The offline switches go first: nothing imported after this may phone home.
from portal import offline as _offline  # noqa: F401
from portal.celery import app as celery_app

__all__ = ["celery_app"]
