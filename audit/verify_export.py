#!/usr/bin/env python3
"""Verify a JSONL export of the audit trail away from the portal.

    python audit/verify_export.py export.jsonl [--checkpoints DIR --public-key checkpoint_ed25519.pub] [--json]

Needs only Python 3.11 and this folder's `chain.py` (plus the `cryptography` package for --checkpoints).
It checks that
  * every line's hash is the SHA-256 of its own fields (no event was altered after the export was made),
  * lines are in chain order and, wherever positions are consecutive, each event names the hash of the one
    before it (a filtered export has gaps between runs; a full export is one run from the genesis hash),
  * with --checkpoints: every signed checkpoint whose event is in the file names that event's exact hash,
    which ties the file to the chain as it was when the checkpoint was signed.
Inside the portal, `manage.py audit_verify --jsonl FILE` also compares every line with the database.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    from audit.chain import GENESIS_HASH, event_hash
except ImportError:  # run as a plain script: make the folder above importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from audit.chain import GENESIS_HASH, event_hash


@dataclass
class ExportReport:
    file: str
    lines: int = 0
    events_valid: int = 0
    first_invalid: dict[str, Any] | None = None
    runs: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    starts_at_genesis: bool = False
    compared_with_database: int = 0
    checkpoints_matched: int = 0
    checkpoints_checked: int = 0
    checkpoint_problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return self.first_invalid is None and not self.checkpoint_problems

    def invalid(self, line: int, seq: Any, reason: str) -> None:
        if self.first_invalid is None:
            self.first_invalid = {"line": line, "seq": seq, "reason": reason}

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "intact": self.intact,
            "lines": self.lines,
            "events_valid": self.events_valid,
            "first_invalid": self.first_invalid,
            "runs": self.runs,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "starts_at_genesis": self.starts_at_genesis,
            "compared_with_database": self.compared_with_database,
            "checkpoints_checked": self.checkpoints_checked,
            "checkpoints_matched": self.checkpoints_matched,
            "checkpoint_problems": self.checkpoint_problems,
        }

    def text_lines(self) -> list[str]:
        out = [f"Validating export {self.file}", ""]
        if self.first_invalid is not None:
            bad = self.first_invalid
            out.append(f"Line {bad['line']} (event #{bad['seq']}) INVALID: {bad['reason']}")
        out += [f"Checkpoint INVALID: {problem}" for problem in self.checkpoint_problems]
        span = f"events #{self.first_seq} to #{self.last_seq}" if self.first_seq is not None else "no events"
        out += [
            f"{self.events_valid}/{self.lines} events valid ({span}, {self.runs} consecutive run(s))",
            "the export starts at the beginning of the chain" if self.starts_at_genesis else "",
            f"{self.compared_with_database} events match the database" if self.compared_with_database else "",
            f"{self.checkpoints_matched}/{self.checkpoints_checked} signed checkpoints inside the export match",
            "",
            "Export intact" if self.intact else "Export NOT intact",
        ]
        return [line for line in out if line != ""] if self.intact else out


def verify_export_file(
    path: Path,
    *,
    stored_hash: Callable[[int], str | None] | None = None,
    checkpoint_dir: Path | None = None,
    public_key_path: Path | None = None,
) -> ExportReport:
    report = ExportReport(file=str(path))
    hashes_by_seq: dict[int, str] = {}
    checkpoint_seqs: dict[int, list[tuple[str, str]]] = {}
    if checkpoint_dir is not None:
        checkpoint_seqs = _load_checkpoints(checkpoint_dir, public_key_path, report)
    previous: dict[str, Any] | None = None
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            report.lines += 1
            try:
                event = json.loads(line)
                seq = int(event["seq"])
                recomputed = event_hash(event)
            except (ValueError, KeyError, TypeError) as error:
                report.invalid(number, None, f"not an audit event ({error})")
                continue
            report.first_seq = seq if report.first_seq is None else report.first_seq
            report.last_seq = seq
            if recomputed != event.get("hash"):
                report.invalid(number, seq, "content does not match its hash (the event was altered)")
                previous = event
                continue
            if previous is not None and seq <= int(previous["seq"]):
                report.invalid(number, seq, "out of chain order (lines were reordered or repeated)")
            elif previous is not None and seq == int(previous["seq"]) + 1:
                if event["previous_hash"] != previous["hash"]:
                    report.invalid(number, seq, "does not link to the event before it (an event was replaced)")
                    previous = event
                    continue
            else:
                report.runs += 1
                if seq == 1:
                    if event["previous_hash"] != GENESIS_HASH:
                        report.invalid(number, seq, "the first event does not start from the genesis hash")
                        previous = event
                        continue
                    report.starts_at_genesis = True
            if stored_hash is not None:
                in_database = stored_hash(seq)
                if in_database != event["hash"]:
                    report.invalid(number, seq, "differs from the event at this position in the database")
                    previous = event
                    continue
                report.compared_with_database += 1
            if seq in checkpoint_seqs:
                hashes_by_seq[seq] = event["hash"]
            report.events_valid += 1
            previous = event
    for seq, signed in checkpoint_seqs.items():
        if seq not in hashes_by_seq:
            continue
        for file_name, head_hash in signed:
            report.checkpoints_checked += 1
            if head_hash == hashes_by_seq[seq]:
                report.checkpoints_matched += 1
            else:
                report.checkpoint_problems.append(f"{file_name}: event #{seq} in the export has another hash")
    return report


def _load_checkpoints(directory: Path, public_key_path: Path | None, report: ExportReport) -> dict[int, list[Any]]:
    from audit.checkpoints import checkpoint_files, load_public_key

    if public_key_path is None:
        report.checkpoint_problems.append("--public-key is required to trust the checkpoints")
        return {}
    public_key = load_public_key(public_key_path)
    found: dict[int, list[Any]] = {}
    for item in checkpoint_files(directory, public_key):
        if item.checkpoint is None:
            report.checkpoint_problems.append(f"{item.name}: {item.problem}")
            continue
        found.setdefault(item.checkpoint.head_seq, []).append((item.name, item.checkpoint.head_hash))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a JSONL export of the audit trail.")
    parser.add_argument("file", type=Path)
    parser.add_argument("--checkpoints", type=Path, help="folder of signed checkpoint files")
    parser.add_argument("--public-key", type=Path, help="the checkpoint public key (PEM) you trust")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = verify_export_file(args.file, checkpoint_dir=args.checkpoints, public_key_path=args.public_key)
    print(json.dumps(report.as_dict()) if args.json else "\n".join(report.text_lines()))
    return 0 if report.intact else 1


if __name__ == "__main__":
    sys.exit(main())
