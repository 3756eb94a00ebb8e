"""Start-up of a web process: warm the embedding model, and tell load balancers when the process is ready.

Loading the model takes seconds (tens on a busy machine); without a warm-up the first question after every
start pays for it. `/readyz` answers 503 until the model is loaded and the database answers, so a load
balancer (or a test) sends traffic only to ready processes; `/healthz` stays the cheap liveness check.
"""

from __future__ import annotations

import gc
import threading

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


def web_process_started() -> None:
    """Called by the ASGI/WSGI entry points once Django is set up."""
    if settings.PORTAL_WARM_UP:
        threading.Thread(target=_warm_up_then_freeze, name="embedding-warm-up", daemon=True).start()
    else:
        gc.freeze()


def _warm_up_then_freeze() -> None:
    from knowledge.embeddings import warm_up

    warm_up()
    # Everything loaded so far (Django, litellm, the embedding model: most of the process's objects) lives as
    # long as the process. Out of the collector's reach, a full collection no longer walks them each time:
    # without this, the collections triggered by a streamed answer's allocations cost a few ms of CPU each.
    gc.freeze()


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    from knowledge.embeddings import is_warm

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any database failure means "not ready"
        return JsonResponse({"status": "database unavailable"}, status=503)
    if settings.PORTAL_WARM_UP and not is_warm():
        return JsonResponse({"status": "warming up"}, status=503)
    return JsonResponse({"status": "ready"})
