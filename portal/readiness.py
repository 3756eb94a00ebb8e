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


def web_process_started() -> threading.Thread | None:
    """Called by the ASGI/WSGI entry points once Django is set up.

    Everything loaded by then and by the warm-up (Django, litellm, the embedding model: most of the process's
    objects) lives as long as the process: frozen out of the collector's reach, a full collection no longer
    walks them each time (without it, the collections a streamed answer's allocations trigger cost a few ms
    of CPU each). Returns the warm-up thread, if one was started."""
    if settings.PORTAL_WARM_UP:
        from knowledge.embeddings import warm_up_in_background

        return warm_up_in_background(then=gc.freeze)
    gc.freeze()
    return None


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
