"""The known-entity dictionary: values the business already holds, found wherever they appear in a prompt.

Other apps register where their values come from (`register_source`) and call `invalidate()` when that
data changes; the dictionary is rebuilt lazily on the next lookup (and at the latest after
GOVERNANCE_KNOWN_ENTITIES_TTL seconds, so other processes pick changes up too).

Matching is case- and accent-insensitive ("ÉLODIE DURAND" finds "Elodie Durand") and only on word
boundaries ("Ann" does not match inside "Annual").
"""

from __future__ import annotations

import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import ahocorasick
from django.conf import settings

from governance import classes as dc
from governance.detection import LAYER_KNOWN, Finding

MIN_VALUE_LENGTH = 3


@dataclass(frozen=True)
class KnownEntity:
    value: str
    data_class: str
    label: str = ""


Loader = Callable[[], Iterable[KnownEntity]]
_sources: dict[str, Loader] = {}
_lock = threading.Lock()
_state: dict[str, object] = {"index": None, "built_at": 0.0, "generation": 0}


def register_source(name: str, loader: Loader) -> None:
    """Add (or replace) a named source of known entities. Safe to call at import or in AppConfig.ready()."""
    with _lock:
        _sources[name] = loader
        _forget()


def invalidate() -> None:
    """Data behind a source changed: rebuild the dictionary before the next lookup."""
    with _lock:
        _forget()


def _forget() -> None:
    _state["index"] = None
    _state["generation"] = int(_state["generation"]) + 1  # type: ignore[call-overload]


def registered_sources() -> list[str]:
    return sorted(set(_sources) | set(BUILTIN_SOURCES))


# ---- normalisation with a way back to the original offsets -------------------------------------------
def normalise(text: str) -> tuple[str, list[int] | None]:
    """Case- and accent-folded text, plus for each folded character the offset of its original character.

    Pure ASCII text keeps its offsets (None means identity), which is the common fast path.
    """
    if text.isascii() and not _WHITESPACE_RUN.search(text):
        return text.lower().translate(_ASCII_SPACES), None
    folded: list[str] = []
    offsets: list[int] = []
    for index, char in enumerate(text):
        if char.isspace():
            if not folded or folded[-1] != " ":  # "Lara  Fiorentino" is "Lara Fiorentino"
                folded.append(" ")
                offsets.append(index)
            continue
        for piece in unicodedata.normalize("NFKD", char):
            if unicodedata.combining(piece):
                continue
            for out in piece.casefold():
                folded.append(out)
                offsets.append(index)
    return "".join(folded), offsets


_WHITESPACE_RUN = re.compile(r"\s{2}")
_ASCII_SPACES = str.maketrans({"\n": " ", "\t": " ", "\r": " ", "\f": " ", "\v": " "})


def normalise_value(value: str) -> str:
    return " ".join(normalise(value)[0].split())


class KnownEntityIndex:
    """An Aho-Corasick automaton over normalised values."""

    def __init__(self, entities: Iterable[KnownEntity]) -> None:
        self.automaton = ahocorasick.Automaton()
        self.size = 0
        for entity in entities:
            key = normalise_value(entity.value)
            if len(key) < MIN_VALUE_LENGTH or not any(ch.isalnum() for ch in key):
                continue
            existing = self.automaton.get(key, None)
            if existing is not None and _stricter_or_equal(existing[1], entity.data_class):
                continue
            if existing is None:
                self.size += 1
            self.automaton.add_word(key, (len(key), entity.data_class, entity.label))
        if self.size:
            self.automaton.make_automaton()

    def find(self, text: str) -> list[Finding]:
        if not self.size or not text:
            return []
        folded, offsets = normalise(text)
        findings = []
        for end_index, (length, data_class, _label) in self.automaton.iter(folded):
            start_index = end_index - length + 1
            if start_index > 0 and folded[start_index - 1].isalnum():
                continue
            if end_index + 1 < len(folded) and folded[end_index + 1].isalnum():
                continue
            if offsets is None:
                start, end = start_index, end_index + 1
            else:
                start, end = offsets[start_index], offsets[end_index] + 1
            findings.append(Finding(start, end, data_class, LAYER_KNOWN, "known_entity"))
        return findings


def _stricter_or_equal(existing_class: str, new_class: str) -> bool:
    from governance.detection import CLASS_PRIORITY

    return CLASS_PRIORITY.get(existing_class, 99) <= CLASS_PRIORITY.get(new_class, 99)


# ---- built-in sources -------------------------------------------------------------------------------
def _user_directory() -> Iterable[KnownEntity]:
    from django.contrib.auth.models import User

    for first, last, email in User.objects.filter(is_active=True).values_list("first_name", "last_name", "email"):
        full = f"{first} {last}".strip()
        if first and last:
            yield KnownEntity(full, dc.PERSON, "user directory")
        if email:
            yield KnownEntity(email, dc.EMAIL, "user directory")


def _term_lists() -> Iterable[KnownEntity]:
    from governance.models import TermList

    for term_list in TermList.objects.all():
        for term in term_list.term_values():
            yield KnownEntity(term, term_list.data_class, f"term list: {term_list.name}")


BUILTIN_SOURCES: dict[str, Loader] = {"users": _user_directory, "term_lists": _term_lists}


def build_index() -> KnownEntityIndex:
    entities: list[KnownEntity] = []
    for loader in [*BUILTIN_SOURCES.values(), *list(_sources.values())]:
        entities.extend(loader())
    return KnownEntityIndex(entities)


def current_index() -> KnownEntityIndex:
    ttl = float(getattr(settings, "GOVERNANCE_KNOWN_ENTITIES_TTL", 60))
    with _lock:
        index = _state["index"]
        if isinstance(index, KnownEntityIndex) and time.monotonic() - float(_state["built_at"]) < ttl:  # type: ignore[arg-type]
            return index
        generation = _state["generation"]
    fresh = build_index()
    with _lock:
        # An invalidate() that arrived while building means the data may already be newer than `fresh`:
        # use it for this lookup, but do not keep it.
        if _state["generation"] == generation:
            _state["index"] = fresh
            _state["built_at"] = time.monotonic()
    return fresh


def known_entity_findings(text: str) -> list[Finding]:
    return current_index().find(text)
