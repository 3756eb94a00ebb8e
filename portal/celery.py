"""The Celery application; its configuration is the CELERY_* part of portal/settings.py.

Broker choice for the embedded default: kombu's filesystem transport, with its folders under
`var/broker`. It needs no server, keeps queued messages as plain files (so work queued just before
Ctrl-C is done on the next start), and works between the separate web and worker processes of one
host, which is all the embedded default promises. It polls and is limited to one host, which is why
production sets CELERY_BROKER_URL to Redis.
"""

from __future__ import annotations

import logging
import os

from celery import Celery
from celery.signals import worker_init

from portal import offline

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


ERROR_WORKER_REFUSED = "The worker does not start: the privacy switches are not in force (see the errors above)."
logger = logging.getLogger(__name__)


@worker_init.connect
def _privacy_on_start(**kwargs: object) -> None:
    # A worker runs no `manage.py check`, so it checks the privacy switches itself and, like every manage.py
    # command, refuses to start when they are not in force (SystemExit gets past Celery's signal dispatch).
    from portal.core.checks import privacy_switches_check

    problems = privacy_switches_check()
    for problem in problems:
        logger.log(problem.level, "%s %s %s", problem.id, problem.msg, problem.hint)
    if any(problem.is_serious() for problem in problems):
        raise SystemExit(ERROR_WORKER_REFUSED)
    # A run without the switches may have left onnxruntime's telemetry queue in the home folder.
    offline.telemetry_queue_remove()


@app.task(name="portal.ping")
def ping(value: str) -> str:
    """Round-trip check used by health checks and the broker tests."""
    return f"pong:{value}"
