from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _static_files_without_manifest(settings: Any) -> None:
    """Work around the storages handler being configured before tests/conftest.py swaps the static storage
    (it then needs a collectstatic manifest listing every new file). Setting it through the `settings`
    fixture sends setting_changed, which resets the handler."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
