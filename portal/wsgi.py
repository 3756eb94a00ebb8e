from __future__ import annotations

import os

import portal.offline  # noqa: F401

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
# A run without the privacy switches may have left onnxruntime's telemetry queue in the home folder.
portal.offline.telemetry_queue_remove()

from portal.core.log_redaction import access_log_redaction_install  # noqa: E402

# The server configured its logging before loading this application: its access log now drops query strings.
access_log_redaction_install()

from portal.readiness import web_process_started  # noqa: E402

web_process_started()
