"""Re-identification: placeholders in a model's answer become the original values again.

Models echo placeholders with small variations (<person_1>, **<PERSON_1>**, [PERSON_1], PERSON_1) and
a streamed answer may cut one in the middle; the restorer holds back the tail of the stream that could
still be the start of a placeholder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from governance.classes import DATA_CLASSES

PLACEHOLDER_RE = re.compile(
    r"(?P<open>[<\[])?\b(?P<cls>" + "|".join(DATA_CLASSES) + r")_(?P<number>\d+)\b(?P<close>[>\]])?",
    re.IGNORECASE,
)
# The end of a stream that might be an unfinished placeholder: an opening bracket and/or a word.
_PENDING_TAIL_RE = re.compile(r"[<\[]?\w*$")
MAX_PENDING = 48


def reidentify(text: str, entries: Mapping[str, str]) -> str:
    if not entries or not text:
        return text

    def replace(match: re.Match[str]) -> str:
        placeholder = f"<{match.group('cls').upper()}_{int(match.group('number'))}>"
        value = entries.get(placeholder)
        if value is None:
            return match.group(0)
        opened, closed = match.group("open") or "", match.group("close") or ""
        # Angle brackets belong to the placeholder; square brackets only when they enclose it.
        prefix = "" if opened == "<" or (opened == "[" and closed == "]") else opened
        suffix = "" if closed == ">" or (opened == "[" and closed == "]") else closed
        return f"{prefix}{value}{suffix}"

    return PLACEHOLDER_RE.sub(replace, text)


class PlaceholderRestorer:
    """Feed streamed pieces in order; what comes out is the re-identified answer, in order."""

    def __init__(self, entries: Mapping[str, str]) -> None:
        self._entries = dict(entries)
        self._pending = ""

    def __repr__(self) -> str:
        return f"PlaceholderRestorer({len(self._entries)} placeholders)"

    def feed(self, text: str) -> str:
        if not self._entries:
            return text
        buffer = self._pending + text
        tail = _PENDING_TAIL_RE.search(buffer)
        cut = tail.start() if tail else len(buffer)
        if len(buffer) - cut > MAX_PENDING:
            cut = len(buffer) - MAX_PENDING
        self._pending = buffer[cut:]
        return reidentify(buffer[:cut], self._entries)

    def finish(self) -> str:
        rest, self._pending = self._pending, ""
        return reidentify(rest, self._entries)
