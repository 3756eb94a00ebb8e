"""Privacy switches that must be set before any library that could phone home is imported.

Imported first by manage.py, the ASGI/WSGI entry points, the Celery app and the test suite.
"""

from __future__ import annotations

import os

OFFLINE_ENVIRONMENT = {
    # sentence-transformers / transformers / huggingface_hub: never reach a model hub
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_DATASETS_OFFLINE": "1",
    # litellm: use the price map bundled with the package, not the remote one
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY": "False",
    # tokenizers spawn threads that do not survive Celery's fork
    "TOKENIZERS_PARALLELISM": "false",
}


def apply() -> None:
    for name, value in OFFLINE_ENVIRONMENT.items():
        os.environ[name] = value


apply()
