from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def model_dir(settings: Any, tmp_path: Path) -> Iterator[Path]:
    """Model files go to a temporary folder; each test starts with an empty in-process model cache."""
    from portal.ml import predict, registry

    directory = tmp_path / "ml"
    settings.ML_MODEL_DIR = directory
    settings.ML_INJECTION_DATASET = ""
    registry.cache_clear()
    predict._reported.clear()
    yield directory
    registry.cache_clear()
    predict._reported.clear()


@pytest.fixture(autouse=True)
def _knowledge_files(knowledge_storage: Path) -> Path:
    """Every test here keeps its uploads in its own temporary folder (tests/conftest.py)."""
    return knowledge_storage
