from __future__ import annotations

import os

import portal.offline  # noqa: F401

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()

from portal.readiness import web_process_started  # noqa: E402

web_process_started()
