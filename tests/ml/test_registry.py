"""Model files: hashed when written, checked when read, and never a way to run someone else's code."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from portal.ml import registry


class NotAnEstimator:
    """A type skops does not trust: a file naming it must be refused before anything is built."""

    def __init__(self) -> None:
        self.payload = "anything"


def test_a_saved_artifact_loads_back_with_its_hash(model_dir: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    classifier = LogisticRegression().fit([[0.0], [1.0], [0.1], [0.9]], ["a", "b", "a", "b"])
    saved = registry.artifact_save(artifact={"classifier": classifier, "labels": ["a", "b"]}, stem="test-v1")
    path = model_dir / saved.file_name
    assert hashlib.sha256(path.read_bytes()).hexdigest() == saved.sha256 and path.stat().st_size == saved.size_bytes
    loaded = registry.artifact_load(file_name=saved.file_name, sha256=saved.sha256)
    assert list(loaded["classifier"].predict([[0.05], [0.95]])) == ["a", "b"]
    assert not [p for p in model_dir.iterdir() if p.name.startswith(".partial-")]


def test_a_file_with_untrusted_types_is_refused(model_dir: Path) -> None:
    saved = registry.artifact_save(artifact={"thing": NotAnEstimator()}, stem="evil-v1")
    with pytest.raises(registry.ModelLoadError, match="not trusted"):
        registry.artifact_load(file_name=saved.file_name, sha256=saved.sha256)


def test_a_changed_file_or_a_path_instead_of_a_name_is_refused(model_dir: Path, tmp_path: Path) -> None:
    saved = registry.artifact_save(artifact={"labels": ["a"]}, stem="test-v2")
    (model_dir / saved.file_name).write_bytes(b"PK\x03\x04 changed")
    with pytest.raises(registry.ModelLoadError, match="does not match the SHA-256"):
        registry.artifact_load(file_name=saved.file_name, sha256=saved.sha256)
    outside = tmp_path / "outside.skops"
    outside.write_bytes(b"x")
    with pytest.raises(registry.ModelLoadError, match="is missing"):
        registry.artifact_load(file_name=str(outside), sha256=hashlib.sha256(b"x").hexdigest())


def test_a_failed_load_is_retried_after_a_while(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saved = registry.artifact_save(artifact={"labels": ["a"]}, stem="test-v3")
    good = (model_dir / saved.file_name).read_bytes()
    (model_dir / saved.file_name).write_bytes(b"broken")
    with pytest.raises(registry.ModelLoadError):
        registry.cached_load(model_id=1, file_name=saved.file_name, sha256=saved.sha256)
    (model_dir / saved.file_name).write_bytes(good)  # an administrator restores the file
    with pytest.raises(registry.ModelLoadError):  # remembered for a while: no hashing on every question
        registry.cached_load(model_id=1, file_name=saved.file_name, sha256=saved.sha256)
    monkeypatch.setattr(registry, "FAILURE_RETRY_SECONDS", 0.0)
    assert registry.cached_load(model_id=1, file_name=saved.file_name, sha256=saved.sha256) == {"labels": ["a"]}
