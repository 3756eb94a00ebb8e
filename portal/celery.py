"""The Celery application; its configuration is the CELERY_* part of portal/settings.py.

Broker choice for the embedded default: kombu's filesystem transport, with its folders under
`var/broker`. It needs no server, keeps queued messages as plain files (so work queued just before
Ctrl-C is done on the next start), and works between the separate web and worker processes of one
host, which is all the embedded default promises. It polls and is limited to one host, which is why
production sets CELERY_BROKER_URL to Redis.
"""

from __future__ import annotations

import os

from celery import Celery

from portal import offline  # noqa: F401

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="portal.ping")
def ping(value: str) -> str:
    """Round-trip check used by health checks and the broker tests."""
    return f"pong:{value}"
