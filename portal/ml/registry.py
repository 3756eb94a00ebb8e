"""Model files: written with skops (no pickle), hashed, and checked against the registry at every load.

A file is only ever loaded when its SHA-256 equals the one recorded when it was trained, and skops
loads only types it trusts (scikit-learn estimators, numpy and scipy arrays, builtins): a file that
asks for anything else is refused before any object is built. A verified model stays in this process's
memory, keyed by its registry row and hash, so a question does not read or hash the file again.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

ERROR_FILE_MISSING = "the model file {name} is missing"
ERROR_HASH_MISMATCH = "the model file {name} does not match the SHA-256 recorded when it was trained"
ERROR_UNTRUSTED = "the model file {name} asks for types that are not trusted: {types}"
ERROR_UNREADABLE = "the model file {name} could not be read ({error})"


class ModelLoadError(Exception):
    """The file of a registered model cannot be used; the message says why and is safe to show."""


def model_dir() -> Path:
    return Path(settings.ML_MODEL_DIR or Path(settings.VAR_DIR) / "ml")


@dataclass(frozen=True)
class SavedFile:
    file_name: str
    sha256: str
    size_bytes: int


def artifact_save(*, artifact: dict[str, Any], stem: str) -> SavedFile:
    """Write `artifact` (a dict of scikit-learn objects, arrays and plain values) as `<stem>.skops`."""
    import skops.io

    data = skops.io.dumps(artifact)
    digest = hashlib.sha256(data).hexdigest()
    directory = model_dir()
    directory.mkdir(parents=True, exist_ok=True)
    file_name = f"{stem}-{digest[:12]}.skops"
    # written beside the target and renamed, so a reader never sees half a file
    handle, scratch = tempfile.mkstemp(prefix=".partial-", dir=directory)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(scratch, 0o640)
        os.replace(scratch, directory / file_name)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise
    return SavedFile(file_name=file_name, sha256=digest, size_bytes=len(data))


def artifact_load(*, file_name: str, sha256: str) -> dict[str, Any]:
    """The artifact, after checking its hash and its types; ModelLoadError otherwise."""
    import skops.io

    path = model_dir() / Path(file_name).name  # a name, never a path from the database
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelLoadError(ERROR_FILE_MISSING.format(name=path.name)) from None
    except OSError as error:
        raise ModelLoadError(ERROR_UNREADABLE.format(name=path.name, error=type(error).__name__)) from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ModelLoadError(ERROR_HASH_MISMATCH.format(name=path.name))
    try:
        untrusted = skops.io.get_untrusted_types(data=data)
        if untrusted:
            raise ModelLoadError(ERROR_UNTRUSTED.format(name=path.name, types=", ".join(sorted(untrusted))))
        artifact = skops.io.loads(data)
    except ModelLoadError:
        raise
    except Exception as error:  # a damaged archive: refused, never half-loaded
        raise ModelLoadError(ERROR_UNREADABLE.format(name=path.name, error=type(error).__name__)) from None
    if not isinstance(artifact, dict):
        raise ModelLoadError(ERROR_UNREADABLE.format(name=path.name, error="not a model artifact"))
    return artifact


_cache_lock = threading.Lock()
_cache: dict[tuple[int, str], dict[str, Any]] = {}
_failures: dict[tuple[int, str], tuple[float, str]] = {}
FAILURE_RETRY_SECONDS = 60.0  # a restored file is picked up again without restarting the process


def cached_load(*, model_id: int, file_name: str, sha256: str) -> dict[str, Any]:
    """`artifact_load`, once per process and model version (failures are remembered too)."""
    key = (model_id, sha256)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        failed = _failures.get(key)
        if failed is not None and time.monotonic() - failed[0] < FAILURE_RETRY_SECONDS:
            raise ModelLoadError(failed[1])
    try:
        artifact = artifact_load(file_name=file_name, sha256=sha256)
    except ModelLoadError as error:
        with _cache_lock:
            _failures[key] = (time.monotonic(), str(error))
        raise
    with _cache_lock:
        _cache[key] = artifact
        _failures.pop(key, None)
    return artifact


def cache_clear() -> None:
    with _cache_lock:
        _cache.clear()
        _failures.clear()
