from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _knowledge_files(knowledge_storage: Path) -> Path:
    """Every test here keeps its uploads in its own temporary folder (tests/conftest.py)."""
    return knowledge_storage
