"""Turning events into CSV and JSON Lines, one row at a time, so exports run in constant memory."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from asgiref.sync import sync_to_async

from audit.chain import HASHED_FIELDS, canonical_json, format_time

# The columns, in this order, in both formats; a JSONL line carries exactly what the hash covers plus id/hash,
# so `audit/verify_export.py` can recompute every hash from the file alone.
EXPORT_COLUMNS = ("id", *HASHED_FIELDS, "hash")
EXPORT_CHUNK_ROWS = 2000  # rows fetched per round trip of the server-side cursor
STREAM_BATCH_ROWS = 500  # rows joined into one piece of the HTTP response
# A spreadsheet treats a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: str) -> str:
    return f"'{value}" if value.startswith(FORMULA_PREFIXES) else value


def event_record(row: tuple[Any, ...]) -> dict[str, Any]:
    record = dict(zip(EXPORT_COLUMNS, row, strict=True))
    record["created_at"] = format_time(record["created_at"])
    record["actor_roles"] = list(record["actor_roles"] or [])
    return record


def jsonl_line(row: tuple[Any, ...]) -> str:
    return canonical_json(event_record(row)) + "\n"


def csv_header() -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(EXPORT_COLUMNS)
    return buffer.getvalue()


def csv_cells(row: tuple[Any, ...]) -> list[str]:
    record = event_record(row)
    record["actor_roles"] = ";".join(record["actor_roles"])
    record["details"] = canonical_json(record["details"])
    record["actor_id"] = "" if record["actor_id"] is None else record["actor_id"]
    return [neutralise_cell(str(record[name])) for name in EXPORT_COLUMNS]


class _LineBuffer:
    """A file-like sink for csv.writer that hands back what was written."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def take(self) -> str:
        text = "".join(self.parts)
        self.parts.clear()
        return text


def render_rows(rows: Iterable[tuple[Any, ...]], export_format: str, *, header: bool = True) -> Iterator[str]:
    """Yield the export as text pieces of about STREAM_BATCH_ROWS rows each."""
    iterator = iter(rows)
    if export_format == "csv":
        sink = _LineBuffer()
        writer = csv.writer(sink)
        if header:
            yield csv_header()
        while batch := list(islice(iterator, STREAM_BATCH_ROWS)):
            writer.writerows(csv_cells(row) for row in batch)
            yield sink.take()
    else:
        while batch := list(islice(iterator, STREAM_BATCH_ROWS)):
            yield "".join(jsonl_line(row) for row in batch)


async def as_async(make_pieces: Callable[[], Iterator[str]]) -> AsyncIterator[bytes]:
    """Serve a synchronous generator under ASGI without buffering it.

    Django would otherwise consume a synchronous iterator into a list first. Every step runs in the same
    (thread-sensitive) worker thread, which owns the database connection and its server-side cursor.
    """
    pieces: Iterator[str] | None = None

    def step() -> str | None:
        nonlocal pieces
        if pieces is None:
            pieces = make_pieces()
        return next(pieces, None)

    def close() -> None:
        if pieces is not None and hasattr(pieces, "close"):
            pieces.close()

    step_async = sync_to_async(step, thread_sensitive=True)
    try:
        while (piece := await step_async()) is not None:
            yield piece.encode("utf-8")
    finally:
        await sync_to_async(close, thread_sensitive=True)()
