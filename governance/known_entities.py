"""The known-entity dictionary: values the business already holds, found wherever they appear in a prompt.

Other apps register where their values come from (`register_source`) and call `invalidate()` when that
data changes; the dictionary is rebuilt lazily on the next lookup. Other processes learn of a change from
PostgreSQL: statement triggers on the sources' tables (users, term lists, customers, interactions) send a
notification on CHANGE_CHANNEL when the writing transaction commits, whoever wrote (a service, the site admin,
an import, plain SQL), and a thread of each process LISTENs for it and has the next lookup compare the
sources' fingerprints (rebuilding only when they changed). While that thread has no connection, the
fingerprints are compared every GOVERNANCE_KNOWN_ENTITIES_TTL seconds instead, as before.

Matching is case- and accent-insensitive ("ÉLODIE DURAND" finds "Elodie Durand"), ignores format characters
(a zero-width space inside a name still finds it), treats commas and runs of whitespace as one space, and
only matches on word boundaries ("Ann" does not match inside "Annual"). Values that are mostly digits
(phones, account numbers) are also matched with every separator folded away ("0612 345 678" finds
"06-12345678"). A person's name is found in its usual spellings (see `person_variants`); a name part
alone (surname, given name) only after a title or where that person is in the context of the prompt.
"""

from __future__ import annotations

import atexit
import logging
import math
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ahocorasick
from django.conf import settings

from governance import classes as dc
from governance.detection import LAYER_KNOWN, Finding

MIN_VALUE_LENGTH = 3
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class KnownEntity:
    value: str
    data_class: str
    label: str = ""
    key: str = ""  # whom the value belongs to ("customer:12", "user:3"): links a person's name to its context
    # one word of a person's name seen alone in a record ("ask for Priya"): found only after a title or where
    # `key` is in the prompt's context, like the given name alone of a customer
    name_part: bool = False


Loader = Callable[[], Iterable[KnownEntity]]
# A cheap summary of a source's data (counts, newest change) that differs whenever the values could: when the
# TTL is up, an unchanged summary of every source keeps the dictionary instead of rebuilding it in a question.
Fingerprint = Callable[[], object]
_sources: dict[str, Loader] = {}
_fingerprints: dict[str, Fingerprint] = {}
_lock = threading.Lock()


@dataclass
class _IndexState:
    """The process's dictionary and what decides when to rebuild it (read and changed under _lock)."""

    index: KnownEntityIndex | None = None
    # time.monotonic() of the last check; -inf: check at the next lookup (0 would not do: the monotonic
    # clock may start near 0 at boot, so on a machine up for less than the TTL a 0 looked fresh)
    built_at: float = -math.inf
    generation: int = 0
    fingerprint: object | None = None


_state = _IndexState()


def register_source(name: str, loader: Loader, *, fingerprint: Fingerprint | None = None) -> None:
    """Add (or replace) a named source of known entities. Safe to call at import or in AppConfig.ready()."""
    with _lock:
        _sources[name] = loader
        if fingerprint is None:
            _fingerprints.pop(name, None)
        else:
            _fingerprints[name] = fingerprint
        _forget()


def invalidate() -> None:
    """Data behind a source changed: rebuild the dictionary before the next lookup."""
    with _lock:
        _forget()


def _forget() -> None:
    _state.index = None
    _state.generation += 1


# ---- changes made by other processes ----------------------------------------------------------------
CHANGE_CHANNEL = "portal_known_entities"  # the sources' triggers notify it (governance migration 0007)
LISTEN_TIMEOUT_SECONDS = 5.0  # how often the listening thread wakes to see whether it should stop
LISTEN_RETRY_SECONDS = 5.0  # wait before connecting again after the connection was lost
LISTEN_WARN_AFTER_SECONDS = 60.0  # a loss this long is logged as a warning (a shorter one at debug level)


CHANGE_FUNCTION = "governance_known_entities_notify"
CHANGE_FUNCTION_SQL = f"""
CREATE FUNCTION {CHANGE_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- delivered when the writing transaction commits, once per transaction and table (same payload)
    PERFORM pg_notify('{CHANGE_CHANNEL}', TG_TABLE_NAME);
    RETURN NULL;
END
$$
"""


def change_trigger_sql(table: str) -> tuple[str, str]:
    """The statement trigger that makes a committed write to `table` notify CHANGE_CHANNEL, and its removal
    (for the migrations of the apps whose tables are known-entity sources)."""
    name = f"{table}_known_entities_notify"
    return (
        f"CREATE TRIGGER {name} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {CHANGE_FUNCTION}()",
        f"DROP TRIGGER IF EXISTS {name} ON {table}",
    )


class _ChangeListener(threading.Thread):
    """LISTENs on CHANGE_CHANNEL on a connection of its own and, on each notification, has the next lookup
    check the sources' fingerprints. A notification is delivered when the writer commits, so the check sees
    the committed data. Having (re)connected, it asks for a check too (a change may have come meanwhile)."""

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(name="known-entities-listener", daemon=True)
        self.params = params
        self.stopping = threading.Event()
        self.listening = threading.Event()
        self.notifications = 0

    def run(self) -> None:
        import psycopg

        down_since: float | None = None
        while not self.stopping.is_set():
            try:
                with psycopg.connect(**self.params, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANGE_CHANNEL}")
                    self.listening.set()
                    down_since = None
                    _check_soon()
                    while not self.stopping.is_set():
                        for _ in conn.notifies(timeout=LISTEN_TIMEOUT_SECONDS, stop_after=1):
                            _check_soon()  # before counting: whoever sees the count finds the check due
                            self.notifications += 1
            except Exception:  # noqa: BLE001 - a lost connection only means the TTL applies until it is back
                # (a database that stops with the portal drops it too: only a lasting loss is worth a warning)
                logger.debug("known entities: the change listener has no connection", exc_info=True)
                now = time.monotonic()
                if down_since is None:
                    down_since = now
                elif now - down_since >= LISTEN_WARN_AFTER_SECONDS:
                    logger.warning(
                        "known entities: the change listener has had no connection for %.0f s; other processes' "
                        "changes are checked every GOVERNANCE_KNOWN_ENTITIES_TTL seconds until it is back",
                        now - down_since,
                    )
                    down_since = now
            self.listening.clear()
            self.stopping.wait(LISTEN_RETRY_SECONDS)


_listener: _ChangeListener | None = None


def _check_soon() -> None:
    """The next lookup compares the sources' fingerprints (and rebuilds if they changed)."""
    with _lock:
        _state.built_at = -math.inf


def change_listener_start() -> _ChangeListener | None:
    """Start this process's listening thread, once (GOVERNANCE_KNOWN_ENTITIES_LISTEN, on by default; the
    tests turn it off, as an open connection would keep their database from being dropped)."""
    global _listener
    if not getattr(settings, "GOVERNANCE_KNOWN_ENTITIES_LISTEN", True):
        return None
    with _lock:
        if _listener is not None and _listener.is_alive():
            return _listener
        from django.db import connection

        params = dict(connection.get_connection_params())
        params.pop("cursor_factory", None)
        params.pop("context", None)
        _listener = _ChangeListener(params)
        _listener.start()
        # at exit, no reconnecting to a database that may already be stopping (the thread is a daemon)
        atexit.register(_listener.stopping.set)
        return _listener


def change_listener_stop() -> None:
    global _listener
    with _lock:
        listener, _listener = _listener, None
    if listener is not None:
        listener.stopping.set()
        listener.join(timeout=LISTEN_TIMEOUT_SECONDS * 2)


def change_listener_listening() -> bool:
    listener = _listener
    return listener is not None and listener.is_alive() and listener.listening.is_set()


def registered_sources() -> list[str]:
    return sorted(set(_sources) | set(BUILTIN_SOURCES))


# ---- normalisation with a way back to the original offsets -------------------------------------------
_SEPARATORS = frozenset(",;")
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
_ASCII_FOLD_RE = re.compile(r"[\s,;]{2,}|[\t\n\r\f\v,;`]")


def normalise(text: str) -> tuple[str, list[int] | None]:
    """Case- and accent-folded text, plus for each folded character the offset of its original character.

    Format characters (Unicode Cf) are dropped, commas, semicolons and whitespace runs become one space,
    dashes a hyphen-minus. ASCII text without any of these keeps its offsets (None means identity).
    """
    if text.isascii():
        lower = text.lower()
        if not _ASCII_FOLD_RE.search(lower):
            return lower, None
        return _fold_ascii(lower)
    folded: list[str] = []
    offsets: list[int] = []
    for index, char in enumerate(text):
        if char.isspace() or char in _SEPARATORS:
            if not folded or folded[-1] != " ":  # "Lara  Fiorentino" is "Lara Fiorentino"
                folded.append(" ")
                offsets.append(index)
            continue
        category = unicodedata.category(char)
        if category == "Cf":
            continue
        if category == "Pd":
            folded.append("-")
            offsets.append(index)
            continue
        for piece in unicodedata.normalize("NFKD", char.translate(_QUOTES)):
            if unicodedata.combining(piece):
                continue
            for out in piece.casefold():
                folded.append(out)
                offsets.append(index)
    return "".join(folded), offsets


def _fold_ascii(lower: str) -> tuple[str, list[int]]:
    pieces: list[str] = []
    offsets: list[int] = []
    position = 0
    for match in _ASCII_FOLD_RE.finditer(lower):
        start = match.start()
        pieces.append(lower[position:start])
        offsets.extend(range(position, start))
        if match.group() == "`":
            pieces.append("'")
            offsets.append(start)
        elif not (pieces and pieces[-1].endswith(" ")) or start != position:
            pieces.append(" ")
            offsets.append(start)
        position = match.end()
    pieces.append(lower[position:])
    offsets.extend(range(position, len(lower)))
    folded = "".join(pieces)
    # two separator runs side by side ("a ,b" is one match; " , " too): collapse what is left
    if "  " in folded:
        kept = [i for i, ch in enumerate(folded) if not (ch == " " and i and folded[i - 1] == " ")]
        folded = "".join(folded[i] for i in kept)
        offsets = [offsets[i] for i in kept]
    return folded, offsets


def normalise_value(value: str) -> str:
    return " ".join(normalise(value)[0].split())


def compact(folded: str) -> tuple[str, list[int]]:
    """Only the letters and digits of folded text, with the offset of each in the folded text."""
    positions = [match.start() for match in _ALNUM_RE.finditer(folded)]
    return "".join(folded[i] for i in positions), positions


_ALNUM_RE = re.compile(r"[^\W_]")


# ---- how people write a known person's name ------------------------------------------------------------
TITLES = (
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "lady", "lord", "rev", "fr",
    "herr", "frau", "fraulein", "hr", "fru", "mme", "mlle", "madame", "monsieur", "mademoiselle",
    "sr", "sra", "srta", "senor", "senora", "senorita", "don", "dona", "dhr", "mevr", "mw", "mej",
    "sig", "sig.ra", "signor", "signora", "signorina", "pan", "pani", "dear", "hi", "hello", "thanks",
)  # fmt: skip
_TITLE_BEFORE_RE = re.compile(r"(?<![\w.])(?:(?:" + "|".join(re.escape(title) for title in TITLES) + r")\.?|m\.) $")
NAME_SUFFIXES = frozenset(
    {"jr", "jr.", "sr", "sr.", "ii", "iii", "iv", "phd", "ph.d.", "md", "m.d.", "esq", "esq.", "dds", "dvm", "mba",
     "b.sc.", "m.sc.", "b.a.", "m.a.", "b.eng.", "m.eng.", "dipl.", "ing.", "mag.", "ll.m."}
)  # fmt: skip
NAME_PARTICLES = frozenset(
    {"van", "der", "den", "de", "del", "della", "di", "da", "das", "dos", "du", "von", "zu", "la", "le", "ten",
     "ter", "bin", "binti", "al", "el", "y", "st", "st.", "mac", "vom", "op", "het", "'t", "d'", "l'"}
)  # fmt: skip
# Given names and surnames that are also everyday English words: alone or in lower case they match only
# where that person is in the prompt's context.
COMMON_WORDS = frozenset(
    """
    amber april art august autumn baker banks bell best bill bishop black bob bond brown bush carter case cash
    chance chase child christian church close cook crane cross crystal daisy dawn day dean drew east fair faith
    field ford fox frank free friend gay gene gold good grace gray green grey guy hale hall hand hardy harry
    hart hay hazel head heather hill holly honey hope house hunt hunter iris ivy jack jay jean joy june just key
    king lamb lane lee lily little long lord love major mark mars marsh martin mason may mercy miles miller
    moody moon moss nash new noble norman north oak olive page paris park parker pat pearl penny pike pool pope
    post power price ray read reed rice rich river rivers rob rock rose ruby sage sale sandy sea sharp shaw ship
    shore short sims sky smith snow south spring star steel sterling stone street strong sue summer sun sunny
    sweet swift taylor tower true violet wall ward warren waters wells west white will wise won wood york young
    """.split()  # noqa: SIM905
)


@dataclass
class PersonName:
    given: str  # folded
    middles: tuple[str, ...]
    family: str  # with its particles: "van der berg"
    core: str  # without them: "berg"
    suffix: str


def parse_person(value: str) -> PersonName | None:
    """The parts of a name as a record stores it: "First M. Last Jr.", "Last, First", "First van der Last"."""
    folded = normalise_value(value.replace(",", " , "))
    tokens = folded.split()
    if "," in value:
        raw = value.split(",")
        after = normalise_value(",".join(raw[1:])).split()
        if after and all(token in NAME_SUFFIXES for token in after):  # "First Last, Jr."
            tokens = [*normalise_value(raw[0]).split(), *after]
        else:  # "Last, First Middle"
            family_tokens = normalise_value(raw[0]).split()
            given_tokens = [t for t in after if t not in NAME_SUFFIXES]
            suffix = " ".join(t for t in after if t in NAME_SUFFIXES)
            if not family_tokens or not given_tokens:
                return None
            return _person(given_tokens, family_tokens, suffix)
    while tokens and tokens[0].rstrip(".") in TITLES and len(tokens) > 2:
        tokens = tokens[1:]
    suffix_tokens: list[str] = []
    while len(tokens) > 2 and tokens[-1] in NAME_SUFFIXES:
        suffix_tokens.insert(0, tokens.pop())
    if len(tokens) < 2:
        return None
    first_family = len(tokens) - 1
    while first_family > 1 and tokens[first_family - 1] in NAME_PARTICLES:
        first_family -= 1
    return _person(tokens[:first_family], tokens[first_family:], " ".join(suffix_tokens))


def _person(given_tokens: list[str], family_tokens: list[str], suffix: str) -> PersonName:
    core = [token for token in family_tokens if token not in NAME_PARTICLES] or family_tokens
    return PersonName(
        given=given_tokens[0],
        middles=tuple(given_tokens[1:]),
        family=" ".join(family_tokens),
        core=" ".join(core),
        suffix=suffix,
    )


def person_variants(value: str) -> tuple[set[str], set[str], set[str]]:
    """(full-name spellings, given-name parts, surname parts), all folded, for one person's name."""
    name = parse_person(value)
    whole = normalise_value(value)
    if name is None:
        return {whole}, set(), set()
    families = {name.family, name.core}
    for family in list(families):
        if "-" in family:
            families.add(family.replace("-", " "))
    givens = {name.given}
    if "-" in name.given:
        givens.add(name.given.replace("-", " "))
    initial = name.given[0]
    middle_forms = {""}
    if name.middles:
        middle_forms |= {" ".join(name.middles), " ".join(m[0] + "." for m in name.middles)}
        middle_forms.add(" ".join(m[0] for m in name.middles))
    full: set[str] = {whole}
    for family in families:
        for given in givens:
            for middle in middle_forms:
                first = f"{given} {middle}".strip()
                full |= {f"{first} {family}", f"{family} {first}"}
                if name.suffix:
                    full.add(f"{first} {family} {name.suffix}")
        full |= {f"{initial}. {family}", f"{family} {initial}."}
    full = {" ".join(variant.split()) for variant in full}
    parts_family = set(families) | {part for family in families for part in family.replace("-", " ").split()}
    parts_family -= NAME_PARTICLES
    parts_given = set(givens) | {part for given in givens for part in given.replace("-", " ").split()}
    return full, {p for p in parts_given if len(p) >= 2}, {p for p in parts_family if len(p) >= 2}


# ---- addresses ----------------------------------------------------------------------------------------
_STREET_THEN_POSTCODE_RE = re.compile(r"(?<=\d)(?:[a-zA-Z]\b)?\s+(?=\d{4,5}(?:\s?[A-Za-z]{2})?\s+[^\W\d_])")


def address_parts(value: str) -> set[str]:
    """The whole address and its parts a person quotes alone: the street with its number, the postcode with
    the city, both together. Parts without a digit (a town, a country) are not kept: they identify no one."""
    segments: list[str] = []
    for line in re.split(r"[\n,;]+", value):
        segments.extend(piece.strip(" .") for piece in _STREET_THEN_POSTCODE_RE.split(line))
    segments = [segment for segment in segments if segment]
    parts = {value}
    for index, segment in enumerate(segments):
        if any(ch.isdigit() for ch in segment) and len(segment) >= 5:
            parts.add(segment)
            if index + 1 < len(segments):
                parts.add(f"{segment} {segments[index + 1]}")
            if index and any(ch.isdigit() for ch in segments[index - 1]):
                parts.add(f"{segments[index - 1]} {segment}")
    return parts


# ---- the index ----------------------------------------------------------------------------------------
NUMBER_CLASSES = frozenset({dc.PHONE, dc.ACCOUNT_NUMBER, dc.BANK_ACCOUNT, dc.PAYMENT_CARD, dc.NATIONAL_ID})
MIN_COMPACT_LENGTH = 5


def _number_like(value: str, data_class: str) -> bool:
    alnum = [ch for ch in value if ch.isalnum()]
    digits = sum(ch.isdigit() for ch in alnum)
    if len(alnum) < MIN_COMPACT_LENGTH or digits < 3:
        return False
    return data_class in NUMBER_CLASSES or digits * 2 >= len(alnum)


@dataclass
class _Entry:
    length: int
    data_class: str | None = None  # the key is a whole value (or a name spelling) of this class
    label: str = ""
    persons: set[str] = field(default_factory=set)  # whose name this spelling is
    guarded: bool = False  # a spelling made of everyday words: needs capitals or the person in context
    parts: set[str] = field(default_factory=set)  # whose given name or surname this word is


@dataclass
class _Pending:
    text_index: int
    start: int
    end: int
    persons: set[str]
    capitalised: bool
    titled: bool
    common: bool


class KnownEntityIndex:
    """Aho-Corasick automata over normalised values (and over the digits and letters of number-like ones)."""

    def __init__(self, entities: Iterable[KnownEntity]) -> None:
        entries: dict[str, _Entry] = {}
        compact_entries: dict[str, _Entry] = {}
        for entity in entities:
            key_of = entity.key or f"{entity.data_class}:{normalise_value(entity.value)}"
            if entity.data_class == dc.PERSON and entity.name_part:
                part = normalise_value(entity.value)
                if len(part) >= 2 and part not in NAME_PARTICLES:
                    entries.setdefault(part, _Entry(len(part))).parts.add(key_of)
                continue
            if entity.data_class == dc.PERSON:
                full, givens, families = person_variants(entity.value)
                whole = normalise_value(entity.value)
                for spelling in full:
                    common = all(
                        token.strip(".") in COMMON_WORDS or len(token.strip(".")) <= 1 for token in spelling.split()
                    )
                    self._add(entries, spelling, entity, person=key_of, guarded=spelling != whole or common)
                for part in givens | families:
                    if len(part) >= 2:
                        entry = entries.setdefault(part, _Entry(len(part)))
                        entry.parts.add(key_of)
                continue
            values = address_parts(entity.value) if entity.data_class == dc.POSTAL_ADDRESS else {entity.value}
            for value in values:
                if _number_like(value, entity.data_class):
                    key = compact(normalise(value)[0])[0]
                    self._add(compact_entries, key, entity, person="", guarded=False, normalised=True)
                else:
                    self._add(entries, normalise_value(value), entity, person="", guarded=False)
        self.automaton = self._automaton(entries)
        self.compact_automaton = self._automaton(compact_entries)
        self.size = sum(1 for entry in entries.values() if entry.data_class) + len(compact_entries)

    @staticmethod
    def _add(
        entries: dict[str, _Entry],
        key: str,
        entity: KnownEntity,
        *,
        person: str,
        guarded: bool,
        normalised: bool = False,
    ) -> None:
        if len(key) < (MIN_COMPACT_LENGTH if normalised else MIN_VALUE_LENGTH) or not any(ch.isalnum() for ch in key):
            return
        entry = entries.get(key)
        if entry is None:
            entry = entries[key] = _Entry(len(key))
        first_value = entry.data_class is None
        if first_value or not _stricter_or_equal(entry.data_class or "", entity.data_class):
            entry.data_class, entry.label = entity.data_class, entity.label
        entry.guarded = guarded if first_value else (entry.guarded and guarded)
        if person:
            entry.persons.add(person)

    @staticmethod
    def _automaton(entries: dict[str, _Entry]) -> Any:
        if not entries:
            return None
        automaton = ahocorasick.Automaton()
        for key, entry in entries.items():
            automaton.add_word(key, entry)
        automaton.make_automaton()
        return automaton

    def find(self, text: str, *, context: Collection[str] = ()) -> list[Finding]:
        return self.find_many([text], context=context)[0]

    def find_many(self, texts: Sequence[str], *, context: Collection[str] = ()) -> list[list[Finding]]:
        """The findings of each text. A name part alone, or a name spelling made of everyday words, counts
        where its person is in `context` (e.g. "customer:12") or named in full in any of the texts."""
        results: list[list[Finding]] = [[] for _ in texts]
        pending: list[_Pending] = []
        mentioned: set[str] = set(context)
        if self.automaton is None and self.compact_automaton is None:
            return results
        for text_index, text in enumerate(texts):
            if not text:
                continue
            folded, offsets = normalise(text)
            if self.automaton is not None:
                self._scan_words(text, folded, offsets, text_index, results, pending, mentioned)
            if self.compact_automaton is not None:
                self._scan_compact(text, folded, offsets, results[text_index])
        for item in pending:
            in_context = bool(item.persons & mentioned)
            if not (item.titled or (in_context and (item.capitalised or not item.common))):
                continue
            found = results[item.text_index]
            if any(f.start < item.end and item.start < f.end for f in found):
                continue  # a part of a name already found whole
            found.append(Finding(item.start, item.end, dc.PERSON, LAYER_KNOWN, "known_name_part"))
        return results

    def _scan_words(
        self,
        text: str,
        folded: str,
        offsets: list[int] | None,
        text_index: int,
        results: list[list[Finding]],
        pending: list[_Pending],
        mentioned: set[str],
    ) -> None:
        for end_index, entry in self.automaton.iter(folded):
            start_index = end_index - entry.length + 1
            if start_index > 0 and folded[start_index - 1].isalnum():
                continue
            if end_index + 1 < len(folded) and folded[end_index + 1].isalnum():
                continue
            if offsets is None:
                start, end = start_index, end_index + 1
            else:
                start, end = offsets[start_index], offsets[end_index] + 1
            capitalised = text[start].isupper()
            if entry.data_class is not None and not entry.guarded:
                results[text_index].append(Finding(start, end, entry.data_class, LAYER_KNOWN, "known_entity"))
                mentioned |= entry.persons
                continue
            titled = bool(_TITLE_BEFORE_RE.search(folded, max(0, start_index - 14), start_index))
            if entry.data_class is not None:  # a spelling of everyday words
                words_capitalised = all(
                    word[:1].isupper()
                    for word in text[start:end].split()
                    if word[:1].isalpha() and word.lower() not in NAME_PARTICLES
                )
                if words_capitalised:
                    results[text_index].append(Finding(start, end, entry.data_class, LAYER_KNOWN, "known_entity"))
                    mentioned |= entry.persons
                else:
                    pending.append(_Pending(text_index, start, end, set(entry.persons), False, titled, False))
            if entry.parts:
                word = folded[start_index : end_index + 1]
                pending.append(
                    _Pending(text_index, start, end, set(entry.parts), capitalised, titled, word in COMMON_WORDS)
                )

    def _scan_compact(self, text: str, folded: str, offsets: list[int] | None, out: list[Finding]) -> None:
        packed, positions = compact(folded)
        for end_index, entry in self.compact_automaton.iter(packed):
            start_folded = positions[end_index - entry.length + 1]
            end_folded = positions[end_index]
            if start_folded > 0 and folded[start_folded - 1].isalnum():
                continue
            if end_folded + 1 < len(folded) and folded[end_folded + 1].isalnum():
                continue
            if start_folded > 0 and folded[start_folded - 1] == "+":
                start_folded -= 1  # "+31610446904": the plus belongs to the number
            if offsets is None:
                start, end = start_folded, end_folded + 1
            else:
                start, end = offsets[start_folded], offsets[end_folded] + 1
            out.append(Finding(start, end, entry.data_class or dc.CUSTOMER_FIELD, LAYER_KNOWN, "known_entity"))


def _stricter_or_equal(existing_class: str, new_class: str) -> bool:
    from governance.detection import CLASS_PRIORITY

    return CLASS_PRIORITY.get(existing_class, 99) <= CLASS_PRIORITY.get(new_class, 99)


# ---- built-in sources -------------------------------------------------------------------------------
def _user_directory() -> Iterable[KnownEntity]:
    from django.contrib.auth.models import User

    users = User.objects.filter(is_active=True).values_list("pk", "first_name", "last_name", "email")
    for pk, first, last, email in users:
        full = f"{first} {last}".strip()
        if first and last:
            yield KnownEntity(full, dc.PERSON, "user directory", key=f"user:{pk}")
        if email:
            yield KnownEntity(email, dc.EMAIL, "user directory", key=f"user:{pk}")


def _term_lists() -> Iterable[KnownEntity]:
    from governance.models import TermList

    for term_list in TermList.objects.all():
        for term in term_list.term_values():
            yield KnownEntity(term, term_list.data_class, f"term list: {term_list.name}")


def _users_fingerprint() -> object:
    from django.contrib.auth.models import User

    # users have no change time: a digest of exactly the columns the dictionary reads, computed in the database
    return _digest(User.objects.filter(is_active=True), "id", "first_name", "last_name", "email")


def _term_lists_fingerprint() -> object:
    from django.db.models import Count, Max

    from governance.models import TermList

    return tuple(TermList.objects.aggregate(count=Count("pk"), newest=Max("updated_at"), top=Max("pk")).values())


def _digest(queryset: Any, *columns: str) -> object:
    from django.contrib.postgres.aggregates import StringAgg
    from django.db.models import CharField, F, Value
    from django.db.models.functions import MD5, Cast, Concat

    pieces: list[Any] = []
    for column in columns:
        pieces += [Cast(F(column), CharField()), Value("|")]
    row = queryset.aggregate(digest=MD5(StringAgg(Concat(*pieces), delimiter="\n", order_by=columns[0])))
    return row["digest"]


BUILTIN_SOURCES: dict[str, Loader] = {"users": _user_directory, "term_lists": _term_lists}
BUILTIN_FINGERPRINTS: dict[str, Fingerprint] = {"users": _users_fingerprint, "term_lists": _term_lists_fingerprint}


def build_index() -> KnownEntityIndex:
    entities: list[KnownEntity] = []
    for loader in [*BUILTIN_SOURCES.values(), *list(_sources.values())]:
        entities.extend(loader())
    return KnownEntityIndex(entities)


def sources_fingerprint() -> object | None:
    """The summary of every source's data, or None when a source has no fingerprint (then only the TTL
    and invalidate() tell that its data changed)."""
    summary: list[object] = []
    for name in [*BUILTIN_SOURCES, *sorted(_sources)]:
        fingerprint = BUILTIN_FINGERPRINTS.get(name) if name in BUILTIN_SOURCES else _fingerprints.get(name)
        if fingerprint is None:
            return None
        summary.append((name, fingerprint()))
    return tuple(summary)


def current_index() -> KnownEntityIndex:
    """The dictionary, built once per process and kept until invalidate(), a notification that another
    process changed a source, or the TTL; then kept still if no source's fingerprint moved (one small query
    per source, not a rebuild)."""
    ttl = float(getattr(settings, "GOVERNANCE_KNOWN_ENTITIES_TTL", 60))
    if _listener is None or not _listener.is_alive():  # not started, or started before this process forked
        change_listener_start()
    with _lock:
        index = _state.index
        if isinstance(index, KnownEntityIndex) and time.monotonic() - _state.built_at < ttl:
            return index
        generation = _state.generation
        kept_fingerprint = _state.fingerprint
    fingerprint = sources_fingerprint()  # read before building: a change made meanwhile shows at the next check
    if isinstance(index, KnownEntityIndex) and fingerprint is not None and fingerprint == kept_fingerprint:
        with _lock:
            if _state.generation == generation:
                _state.built_at = time.monotonic()
        return index
    fresh = build_index()
    with _lock:
        # An invalidate() that arrived while building means the data may already be newer than `fresh`:
        # use it for this lookup, but do not keep it.
        if _state.generation == generation:
            _state.index = fresh
            _state.built_at = time.monotonic()
            _state.fingerprint = fingerprint
    return fresh


def known_entity_findings(text: str, *, context: Collection[str] = ()) -> list[Finding]:
    return current_index().find(text, context=context)


def known_entity_findings_many(texts: Sequence[str], *, context: Collection[str] = ()) -> list[list[Finding]]:
    """The findings of several texts of one prompt: a person named in one makes their given name alone count
    in all of them."""
    return current_index().find_many(texts, context=context)
