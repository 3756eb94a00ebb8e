from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from portal.core.types import PortalRequest


@login_required
@require_GET
def home(request: PortalRequest) -> HttpResponse:
    roles = list(request.user.groups.select_related("role").order_by("role__position"))
    return render(request, "core/home.html", {"roles": roles})


@require_GET
def healthz(request: PortalRequest) -> JsonResponse:
    """Liveness and database reachability for load balancers; reveals nothing else."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return JsonResponse({"status": "ok"})
    except Exception:  # noqa: BLE001 - any database failure means "not ready"
        return JsonResponse({"status": "database unavailable"}, status=503)
