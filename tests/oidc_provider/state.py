"""The JSON state file the test writes and the provider reads at every request."""

from __future__ import annotations

import json
from typing import Any

from tests.oidc_provider.settings import STATE_FILE


def read() -> dict[str, Any]:
    try:
        return dict(json.loads(STATE_FILE.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return {}
