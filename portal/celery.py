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
from celery.signals import worker_init

from portal import offline

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _remove_telemetry_queue(**kwargs: object) -> None:
    # A run without the privacy switches may have left onnxruntime's telemetry queue in the home folder.
    offline.telemetry_queue_remove()


@app.task(name="portal.ping")
def ping(value: str) -> str:
    """Round-trip check used by health checks and the broker tests."""
    return f"pong:{value}"
