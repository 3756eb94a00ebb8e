"""Signed checkpoints of the audit chain head, kept as files outside the database.

A checkpoint says "on <time>, the chain had <count> events and event #<seq> had hash <hash>", signed
with an Ed25519 key that lives on disk (never in the database). Someone who can rewrite the database,
even recomputing every hash after a change, cannot forge a matching signature; someone who deletes the
newest rows leaves a checkpoint naming an event that no longer exists. The files are small JSON
documents meant to be copied elsewhere (another host, WORM storage, an e-mail), and verifiers need
only the public key.

This module depends on the standard library and `cryptography` only, so `audit/verify_export.py` can
use it without Django.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

CHECKPOINT_FORMAT = "hybrid-ai-portal.audit-checkpoint/1"
CHECKPOINT_GLOB = "checkpoint-*.json"
SIGNED_FIELDS = ("format", "head_seq", "head_hash", "event_count", "head_created_at", "created_at", "key_id")

ERROR_NOT_ED25519 = "{path} does not hold an Ed25519 key"
ERROR_NO_KEY = "no checkpoint key at {path}"


def _canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def public_key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def load_private_key(pem: bytes, origin: str = "the configured key") -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(ERROR_NOT_ED25519.format(path=origin))
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(ERROR_NOT_ED25519.format(path=path))
    return key


def private_key_ensure(path: Path, public_path: Path) -> Ed25519PrivateKey:
    """Load the signing key, creating it (mode 600) and its public half on first use."""
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        with contextlib.suppress(FileExistsError):  # another process created it first: use theirs
            _write_private(path, pem)
    key = load_private_key(path.read_bytes(), str(path))
    public_key_write(key.public_key(), public_path)
    return key


def public_key_write(public_key: Ed25519PublicKey, public_path: Path) -> None:
    pem = public_key_pem(public_key)
    if public_path.exists() and public_path.read_bytes() == pem:
        return
    public_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = public_path.with_suffix(public_path.suffix + ".tmp")
    temporary.write_bytes(pem)
    os.replace(temporary, public_path)


@dataclass(frozen=True)
class Checkpoint:
    head_seq: int
    head_hash: str
    event_count: int
    head_created_at: str
    created_at: str
    key_id: str
    signature: str
    format: str = CHECKPOINT_FORMAT

    def signed_payload(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SIGNED_FIELDS}

    def to_json(self) -> str:
        return json.dumps({**self.signed_payload(), "signature": self.signature}, indent=2, sort_keys=True) + "\n"

    @property
    def file_name(self) -> str:
        stamp = self.created_at.replace("-", "").replace(":", "").replace(".", "")
        return f"checkpoint-{self.head_seq:012d}-{stamp}.json"


def checkpoint_sign(
    *, private_key: Ed25519PrivateKey, head_seq: int, head_hash: str, event_count: int, head_created_at: str,
    created_at: str,
) -> Checkpoint:  # fmt: skip
    unsigned = Checkpoint(
        head_seq=head_seq,
        head_hash=head_hash,
        event_count=event_count,
        head_created_at=head_created_at,
        created_at=created_at,
        key_id=public_key_id(private_key.public_key()),
        signature="",
    )
    signature = private_key.sign(_canonical(unsigned.signed_payload()))
    return Checkpoint(**{**unsigned.signed_payload(), "signature": base64.b64encode(signature).decode("ascii")})


def checkpoint_write(checkpoint: Checkpoint, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / checkpoint.file_name
    temporary = directory / f".{checkpoint.file_name}.tmp"
    temporary.write_text(checkpoint.to_json(), encoding="utf-8")
    os.replace(temporary, path)
    return path


class CheckpointInvalid(ValueError):
    """A checkpoint file that cannot be parsed or whose signature does not verify."""


def checkpoint_parse(text: str, public_key: Ed25519PublicKey | None) -> Checkpoint:
    """Parse one checkpoint file and check its signature (when a public key is given)."""
    try:
        data = json.loads(text)
        checkpoint = Checkpoint(
            head_seq=int(data["head_seq"]),
            head_hash=str(data["head_hash"]),
            event_count=int(data["event_count"]),
            head_created_at=str(data["head_created_at"]),
            created_at=str(data["created_at"]),
            key_id=str(data["key_id"]),
            signature=str(data["signature"]),
            format=str(data["format"]),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointInvalid(f"not a readable checkpoint ({error})") from error
    if checkpoint.format != CHECKPOINT_FORMAT:
        raise CheckpointInvalid(f"unknown format {checkpoint.format!r}")
    # the payload must be exactly what was signed: re-serialising the parsed fields proves no field was added
    if {**checkpoint.signed_payload(), "signature": checkpoint.signature} != data:
        raise CheckpointInvalid("unexpected or altered fields")
    if public_key is None:
        raise CheckpointInvalid("no public key to check the signature with")
    if checkpoint.key_id != public_key_id(public_key):
        raise CheckpointInvalid(f"signed by another key ({checkpoint.key_id}, expected {public_key_id(public_key)})")
    try:
        public_key.verify(
            base64.b64decode(checkpoint.signature, validate=True), _canonical(checkpoint.signed_payload())
        )
    except (InvalidSignature, ValueError) as error:
        raise CheckpointInvalid("the signature does not verify (the file was altered or forged)") from error
    return checkpoint


@dataclass(frozen=True)
class CheckpointFile:
    name: str
    checkpoint: Checkpoint | None
    problem: str = ""


def checkpoint_files(directory: Path, public_key: Ed25519PublicKey | None) -> Iterator[CheckpointFile]:
    """Every checkpoint file of a folder, in file-name order (head sequence, then time)."""
    if not directory.is_dir():
        return
    for path in sorted(directory.glob(CHECKPOINT_GLOB)):
        try:
            yield CheckpointFile(path.name, checkpoint_parse(path.read_text(encoding="utf-8"), public_key))
        except (CheckpointInvalid, OSError, UnicodeDecodeError) as error:
            yield CheckpointFile(path.name, None, str(error))


def checkpoint_time(text: str) -> datetime:
    """The aware datetime of a checkpoint's `created_at` (the chain's time format, always UTC)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def latest_checkpoint(directory: Path) -> Checkpoint | None:
    """The newest checkpoint file, read without checking its signature (used to skip unchanged heads)."""
    if not directory.is_dir():
        return None
    names = sorted(directory.glob(CHECKPOINT_GLOB))
    for path in reversed(names):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return Checkpoint(**data)
        except (ValueError, TypeError, OSError):
            continue
    return None
