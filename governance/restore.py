"""Re-identification: placeholders in a model's answer become the original values again.

Models echo placeholders in many spellings: any case (<person_1>, Person_1), markdown-escaped
(PERSON\\_1, \\<PERSON\\_1\\>), with a hyphen or a space for the underscore (PERSON-1, DATE OF BIRTH 2),
inside angle brackets, HTML entities (&lt;PERSON_1&gt;), square or curly brackets, or markdown emphasis
(**<PERSON_1>**, which stays emphasis around the value). Every spelling of a placeholder the conversation's
vault holds is restored; one it does not hold is left exactly as written.

A streamed answer may cut a placeholder anywhere; the restorer holds back the end of the stream while it
could still be (the start of) a placeholder, using the `regex` module's partial matching.
"""

from __future__ import annotations

from collections.abc import Mapping

import regex

from governance.classes import DATA_CLASSES

_SEPARATOR = r"(?:\\?_|[- ])"
_CLASSES = "|".join(name.replace("_", _SEPARATOR) for name in sorted(DATA_CLASSES, key=len, reverse=True))
PLACEHOLDER_RE = regex.compile(
    r"(?P<open>\\?<|&lt;|\\?\[|\{)?"
    r"(?<![^\W_])(?P<cls>" + _CLASSES + r")" + _SEPARATOR + r"(?P<number>\d+)(?![^\W_])"
    r"(?P<close>\\?>|&gt;|\\?\]|\})?",
    regex.IGNORECASE | regex.VERSION0,
)
_PAIRS = {"[": "]", "{": "}"}
_CLOSINGS = ("\\>", "&gt;", "\\]", ">", "]", "}")
MAX_PENDING = 64


def _canonical(class_spelling: str, number: str) -> str:
    words = regex.split(r"\\?_|[- ]", class_spelling)
    return f"<{'_'.join(words).upper()}_{int(number)}>"


def reidentify(text: str, entries: Mapping[str, str]) -> str:
    if not entries or not text:
        return text

    def replace(match: regex.Match[str]) -> str:
        value = entries.get(_canonical(match.group("cls"), match.group("number")))
        if value is None:
            return str(match.group(0))
        opened = (match.group("open") or "").lstrip("\\")
        closed = (match.group("close") or "").lstrip("\\")
        # Angle brackets (and their entities) belong to the placeholder; square or curly ones only in pairs.
        prefix = "" if opened in ("<", "&lt;") or (opened in _PAIRS and _PAIRS[opened] == closed) else opened
        suffix = "" if closed in (">", "&gt;") or (opened in _PAIRS and _PAIRS[opened] == closed) else closed
        if prefix and match.group("open", "close")[0].startswith("\\"):
            prefix = "\\" + prefix
        if suffix and (match.group("close") or "").startswith("\\"):
            suffix = "\\" + suffix
        return f"{prefix}{value}{suffix}"

    return str(PLACEHOLDER_RE.sub(replace, text))


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
        cut = _safe_cut(buffer)
        self._pending = buffer[cut:]
        return reidentify(buffer[:cut], self._entries)

    def finish(self) -> str:
        rest, self._pending = self._pending, ""
        return reidentify(rest, self._entries)


def _safe_cut(buffer: str) -> int:
    """Where the part of `buffer` that can no longer change begins to be uncertain: the start of the last
    match (complete or partial) that reaches the end of the buffer, or its end if there is none."""
    window = max(0, len(buffer) - MAX_PENDING)
    cut = len(buffer)
    for match in PLACEHOLDER_RE.finditer(buffer, window, partial=True):
        rest = buffer[match.end() :]
        # a match at the end, or followed only by the start of a closing bracket ("\\", "&g"), may still grow
        if match.end() > match.start() and (not rest or any(close.startswith(rest) for close in _CLOSINGS)):
            cut = match.start()
            break
    # an opening bracket, backslash or entity start at the very end may begin a placeholder
    tail = regex.search(r"(?:\\|<|&(?:l(?:t;?)?)?|\[|\{)+$", buffer[:cut])
    if tail is not None and tail.start() >= window:
        cut = tail.start()
    return cut
