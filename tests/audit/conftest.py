from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def audit_files(tmp_path: Path, settings: Any) -> Path:
    """Keep checkpoint keys, checkpoints and export files of every test in its own folder."""
    base = tmp_path / "audit"
    settings.AUDIT_CHECKPOINT_KEY = ""
    settings.AUDIT_CHECKPOINT_KEY_PATH = base / "checkpoint_ed25519.key"
    settings.AUDIT_CHECKPOINT_PUBLIC_KEY_PATH = base / "checkpoint_ed25519.pub"
    settings.AUDIT_CHECKPOINT_DIR = base / "checkpoints"
    settings.AUDIT_EXPORT_DIR = base / "exports"
    return base
