"""Finding sensitive values in text, in layers that can each be measured on their own.

Layers:
- "patterns": values with a checkable shape (e-mail, Luhn-valid cards, IBANs, national ids, phones, IP
  addresses, secret formats, dates of birth, street addresses) and the health/financial lexicon;
- "known_entities": exact values the business already has (users, term lists, customer records), see
  governance.known_entities;
- "ner": an optional statistical name finder, only when a backend is configured (none ships).

Findings carry offsets only. Nothing here logs or stores a value.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

import phonenumbers
from django.conf import settings
from django.utils.module_loading import import_string
from stdnum import iban, luhn
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.it import codicefiscale
from stdnum.us import ssn

from governance import classes as dc

LAYER_PATTERNS = "patterns"
LAYER_KNOWN = "known_entities"
LAYER_NER = "ner"
LAYERS: tuple[str, ...] = (LAYER_PATTERNS, LAYER_KNOWN, LAYER_NER)


@dataclass(frozen=True)
class Finding:
    start: int
    end: int
    data_class: str
    layer: str
    detector: str = ""

    def overlaps(self, other: Finding) -> bool:
        return self.start < other.end and other.start < self.end


# When two findings overlap, a checksum-validated value (a Luhn-valid card, an IBAN, a national id, a secret
# format) wins whatever its length: it is the strictest and the most certain. Otherwise the longer span wins
# (an organisation name inside a street address must not leave the rest of the address in clear), then the
# class checked most strictly, then the layer that knows the value.
CLASS_PRIORITY: dict[str, int] = {
    dc.CREDENTIAL: 0,
    dc.PAYMENT_CARD: 1,
    dc.BANK_ACCOUNT: 2,
    dc.NATIONAL_ID: 3,
    dc.ACCOUNT_NUMBER: 4,
    dc.EMAIL: 5,
    dc.IP_ADDRESS: 6,
    dc.CUSTOMER_FIELD: 7,
    dc.PERSON: 8,
    dc.DATE_OF_BIRTH: 9,
    dc.POSTAL_ADDRESS: 10,  # before phones: "370 3911 Fourth Avenue" is a street number, not a phone
    dc.PHONE: 11,
    dc.DATE: 12,
    dc.HEALTH: 13,
    dc.FINANCIAL: 14,
}
LAYER_PRIORITY = {LAYER_KNOWN: 0, LAYER_PATTERNS: 1, LAYER_NER: 2}
VALIDATED_DETECTORS = frozenset(
    {"card", "iban", "us_ssn", "it_codicefiscale", "es_dni", "es_nie", "fr_nir", "secret_format", "secret_assignment"}
)


def resolve_overlaps(findings: Iterable[Finding]) -> list[Finding]:
    ordered = sorted(
        findings,
        key=lambda f: (
            0 if f.detector in VALIDATED_DETECTORS else 1,
            f.start - f.end,
            CLASS_PRIORITY.get(f.data_class, 99),
            LAYER_PRIORITY.get(f.layer, 9),
            f.start,
        ),
    )
    kept: list[Finding] = []
    for finding in ordered:
        if not any(finding.overlaps(other) for other in kept):
            kept.append(finding)
    return sorted(kept, key=lambda f: f.start)


# ---- normalisation with a way back to the original offsets -------------------------------------------
def prepare(text: str) -> tuple[str, list[int] | None]:
    """The text the detectors read, and for each of its characters the offset of the original character.

    NFKC (full-width digits, ligatures, non-breaking spaces become their plain forms), format characters
    (Unicode Cf: zero-width space/joiner/non-joiner, soft hyphen, BOM, bidi marks) dropped, every dash a
    hyphen-minus and every space separator a space, so "0612\u2011345\u200b678" reads as "0612-345678".
    Pure ASCII text is returned as it is (None: offsets are the identity), the common fast path.
    """
    if text.isascii():
        return text, None
    out: list[str] = []
    offsets: list[int] = []
    for index, char in enumerate(text):
        category = unicodedata.category(char)
        if category == "Cf":
            continue
        if category == "Pd":
            pieces = "-"
        elif category == "Zs":
            pieces = " "
        else:
            pieces = unicodedata.normalize("NFKC", char)
        for piece in pieces:
            out.append(piece)
            offsets.append(index)
    return "".join(out), offsets


def to_original(start: int, end: int, offsets: Sequence[int] | None) -> tuple[int, int]:
    """A [start, end) span of prepared text as a span of the original text."""
    if offsets is None:
        return start, end
    return offsets[start], offsets[end - 1] + 1


_OPENERS = {")": "(", "]": "[", "}": "{", ">": "<"}
_CLOSERS = {value: key for key, value in _OPENERS.items()}


def trim_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Leave a bracket out of a span when its partner is not inside it ("(+44 20 7946 0958)" keeps both
    brackets outside the phone), and whitespace at either end."""
    changed = True
    while changed and start < end:
        changed = False
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start >= end:
            break
        last, first = text[end - 1], text[start]
        if last in _OPENERS and text.count(_OPENERS[last], start, end) < text.count(last, start, end):
            end -= 1
            changed = True
        elif first in _CLOSERS and text.count(_CLOSERS[first], start, end) < text.count(first, start, end):
            start += 1
            changed = True
        elif last in _CLOSERS:  # an opening bracket at the very end belongs to what follows
            end -= 1
            changed = True
        elif first in _OPENERS:  # a closing bracket at the very start belongs to what precedes
            start += 1
            changed = True
    return start, end


# ---- validated patterns ----------------------------------------------------------------------------
EMAIL_RE = re.compile(
    r"(?<![\w+%-])[\w+%-][\w.+%-]*@[^\W_](?:[\w-]*[^\W_])?(?:\.[^\W_](?:[\w-]*[^\W_])?)*\.[^\W\d_]{2,}\b"
)
CARD_RE = re.compile(
    r"(?<![\w+-])(?:\d{12,19}|\d{4}(?:[ -]\d{4}){2}[ -]\d{1,7}|\d{4}[ -]\d{6}[ -]\d{4,5})(?![\w-]|[.,]\d)"
)
IBAN_COMPACT_RE = re.compile(r"(?<![\w])[A-Za-z]{2}\d{2}[A-Za-z0-9]{11,30}(?![\w])")
IBAN_GROUPED_RE = re.compile(r"(?<![\w])[A-Za-z]{2}\d{2}(?: [A-Za-z0-9]{4}){2,7}(?: [A-Za-z0-9]{1,3})?(?![\w])")
SSN_RE = re.compile(r"(?<![\w-])\d{3}([- ])\d{2}\1\d{4}(?![\w-])")
NATIONAL_OTHER_RE = re.compile(
    r"(?<![\w])(?:[A-Za-z]{6}\d{2}[A-Za-z]\d{2}[A-Za-z]\d{3}[A-Za-z]"  # Italian codice fiscale
    r"|\d{8}-?[A-Za-z]|[XYZxyz]-?\d{7}-?[A-Za-z]"  # Spanish DNI / NIE
    r"|[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2})(?![\w])"  # French NIR
)
IPV4_RE = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
IPV6_RE = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|:)(?![\w:])")
PHONE_INTERNATIONAL_RE = re.compile(
    r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,6}(?:\s?(?:x|ext\.?)\s?\d{1,6})?(?!\d)"
)
PHONE_LOCAL_RE = re.compile(
    r"(?<![\w/.+-])(?:\(\d{2,4}\) ?|\d{2,5}[ .-])(?:\d{2,4}[ .-]){0,4}\d{2,8}(?:x\d{1,6})?(?![\d/]|[.-]\d)"
    r"|(?<![\w/.+-])\d{10,11}(?![\w/]|[.-]\d)"
)
# Short local numbers ("61 51 81", "4711-22") are phones only after a word that says so.
PHONE_CONTEXT_RE = re.compile(
    r"(?i:\b(?:tel(?:ephone|efoon|efon|[ée]phone)?|phone|ph|mobile?|mob|cell(?:phone)?|gsm|fax|call|ring|dial|bel"
    r"|extension|ext|landline|number|nummer|num[ée]ro|nr|no)\b\.?(?:\s*(?:number|no\.?|nr\.?|#))?"
    r"(?:\s+(?:is|at|on|me|us|him|her|them|op|au|:))*[\s:#.]*)"
    r"(?P<value>\(?\d{2,4}\)?(?:[ .-]?\d{2,4}){1,4})(?![\w/]|[.-]\d)"
)
DRIVER_LICENCE_RE = re.compile(
    r"(?i:\b(?:driver'?s?|driving)[ -]licen[cs]e(?:\s+(?:number|no\.?|nr\.?|id|#))?"
    r"|\bDL\s*(?:#|no\.?|number|nr\.?)|\bdriver'?s?\s+(?:licen[cs]e\s+)?(?:number|no\.?|#)"
    r"|\blicen[cs]e\s+(?:number|no\.?|#))"
    r"(?:\s+(?:is|was|reads|:))*[\s:#]*"
    r"(?P<value>[A-Za-z]{0,3}[- ]?\d(?:[\d -]{3,18})\d|[A-Za-z]{1,3}\d{4,16}[A-Za-z]?)(?![\w-])"
)
DATE_SHAPE_RE = re.compile(
    r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}(?!\d)|^\d{1,2}[-/]\d{1,2}[-/]\d{2,4}$|^\d{1,2}:\d{2}"
    r"|^(?:19|20)\d\d ?[-.] ?(?:19|20)\d\d$"  # a range of years, "2019-2023"
)
DATE_TEXT = (
    r"(?:\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}"
    r"|\d{1,2}(?:st|nd|rd|th)? (?:of )?(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?,? \d{4}"
    r"|(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? \d{1,2}(?:st|nd|rd|th)?,? \d{4})"
)
TIME_TEXT = r"(?:(?:,? | ?T| at )\d{1,2}:\d{2}(?::\d{2})?(?: ?[AaPp]\.?[Mm]\.?)?)?"
DOB_RE = re.compile(
    r"(?i:\b(?:born(?: on)?|date of birth|birth ?date|birthday|d\.?o\.?b\.?|geboren(?: am)?|n[ée]e? le)\b"
    r"(?:[\s:,.-]|\bis\b|\bwas\b|\bon\b|it'?s)*)"
    r"(?P<value>" + DATE_TEXT + TIME_TEXT + r")",
)
WEEKDAYS = r"(?:Mon|Tues?|Wed(?:nes)?|Thu(?:rs)?|Fri|Sat(?:ur)?|Sun)(?:day)?\.?,? "
DATE_RE = re.compile(
    r"(?<![\w./-])(?:" + WEEKDAYS + r")?(?P<value>" + DATE_TEXT + r")" + TIME_TEXT + r"(?![\w]|[./-]\d)",
    re.IGNORECASE,
)
CREDENTIAL_RES: tuple[re.Pattern[str], ...] = (
    re.compile(r"(?<![\w-])sk-(?:proj-|ant-(?:api\d\d-)?)?[A-Za-z0-9_-]{20,}"),
    re.compile(r"(?<![\w])(?:AKIA|ASIA)[0-9A-Z]{16}(?![\w])"),
    re.compile(r"(?<![\w])gh[pousr]_[A-Za-z0-9]{30,}(?![\w])"),
    re.compile(r"(?<![\w])github_pat_[A-Za-z0-9_]{22,}"),
    re.compile(r"(?<![\w])xox[abprs]-[A-Za-z0-9-]{10,}"),
    re.compile(r"(?<![\w])AIza[0-9A-Za-z_-]{35}(?![\w-])"),
    re.compile(r"(?<![\w])[rs]k_(?:live|test)_[0-9A-Za-z]{16,}"),
    re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
)
SECRET_ASSIGNMENT_RE = re.compile(
    r"(?i:\b(?:password|passwd|pwd|passphrase|passwort|kennwort|mot de passe|secret|api[_ -]?key|access[_ -]?token"
    r"|auth[_ -]?token|client[_ -]?secret)\b\s*(?:is\s*)?[:=]\s*)[\"']?(?P<value>[^\s\"',;]{4,})"
)
STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Boulevard|Blvd|Drive|Dr|Court|Ct|Place|Pl|Square|Sq|Way|Terrace|"
    r"Parkway|Pkwy|Highway|Hwy|Circle|Cir|Crescent|Alley|Trail|Row|Walk|Close|Gardens|Mews|Hill|Park|Ridge|Plaza|"
    r"Path|Pike|Loop|Crossing|Forges?|Falls|Fields?|Groves?|Heights|Meadows?|Mills?|Springs?|Squares?|Stream|"
    r"Summit|Valley|Views?|Villages?|Wells?|Islands?|Isle|Junction|Key|Knolls?|Lakes?|Landing|Light|Lodge|Manor|"
    r"Motorway|Neck|Orchard|Oval|Pass|Pines|Points?|Port|Prairie|Radial|Ranch|Rapids?|Rest|Route|Shoals?|Shores?|"
    r"Station|Track|Trafficway|Tunnel|Turnpike|Underpass|Unions?|Via|Vista|Expressway|Extension|Freeway|Bypass|"
    r"Causeway|Center|Centre|Cliffs?|Club|Common|Corners?|Course|Courts?|Coves?|Creek|Dale|Dam|Divide|Estates?|"
    r"Ferry|Flats?|Ford|Forest|Fort|Freeway|Garden|Gateway|Glen|Green|Harbor|Haven|Hollow|Inlet|Lock|Mall|Mount|"
    r"Mountain|Brook|Burg|Bluff|Bend|Beach|Bayou|Branch|Bridge|Camp|Canyon|Cape|Spur|Stravenue|Ville|Wall|Ways)"
)
STREET_RE = re.compile(
    r"(?<![\w])\d{1,6}[A-Za-z]?(?:[ ,-]+[^\W\d_][\w'.-]*){1,5}[ ]+" + STREET_SUFFIX + r"\.?(?![\w])"
    r"(?:,?\s*(?:Apt\.?|Suite|Unit|#)\s*[\w-]+)?"
    r"|(?<![\w])[^\W\d_][\w-]*(?:straße|strasse|str\.|weg|gasse|platz|allee|katu|gatan|vägen|vej|laan|straat|gade"
    r"|gracht|plein|kade|dreef|singel|dijk|steeg|kuja|polku|[^\W\d_]{3}tie|väg|gata|stien|veien|utca|ulice|iela|gatve)"
    r"\s+\d{1,5}[a-zA-Z]?(?:\s*(?:Apt\.?|Suite|Unit)\s*[\w-]+)?"
    r"|(?<![\w])\d{1,5}[ ,]+(?:rue|avenue|boulevard|chemin|place|via|calle|rua|avenida|viale|piazza)\b[^\n,]{2,40}",
    re.IGNORECASE,
)
# A street name after a word that opens one in Romance and Slavic languages, then its number ("Rua Diadema
# 1903", "Via Roma 131", "ul. Słowicza 10"): the name must be capitalised, so "Via email 24" is not one.
_CAPITALISED = r"[A-ZÀ-ÖØ-ÞĀ-Ž][\w'.-]*"
_NAME_LINK = r"(?:de|del|della|dei|di|da|do|dos|das|des|du|la|le|las|los|von|van|y|e)"
STREET_LEADING_RE = re.compile(
    r"(?<![\w])(?:Rua|Via|Viale|Vicolo|Corso|Piazza|Strada|Calle|Carrer|Avenida|Avinguda|Plaza|Praça|Largo|Travessa"
    r"|Rue|Chemin|Boulevard|Allée|Impasse|Quai|Place|ul\.|ulica|Calea|Strada)"
    r"\s+(?:" + _NAME_LINK + r"\s+)*" + _CAPITALISED + r"(?:\s+(?:" + _NAME_LINK + r"|" + _CAPITALISED + r")){0,4}"
    r",?\s+\d{1,5}[a-zA-Z]?(?![\w])"
)
# A street without a street word, then its number, a postcode and a capitalised town ("Dok Noord 12 9000
# Ghent", "Hoge Wei 32, 1234 AB Utrecht"): the number followed by a postcode and a town is what makes it one.
STREET_POSTCODE_CITY_RE = re.compile(
    r"(?<![\w])" + _CAPITALISED + r"(?:\s+(?:" + _NAME_LINK + r"|" + _CAPITALISED + r")){0,3}"
    r"\s+\d{1,4}[a-zA-Z]?(?:\s*(?:bus|box|/)\s*\d{1,4})?,?\s+(?:[A-Z]{1,2}-)?\d{4,5}(?:\s?[A-Z]{2})?,?\s+"
    + _CAPITALISED
)
# Words before a number in documents that are not street names ("See Table 4 2023 Results").
NOT_STREET_WORDS = frozenset(
    """page pages table figure fig section chapter step part article art item level tier plan version release
    appendix volume vol issue question room floor line row column grade year week day phase stage round option
    rule clause paragraph note exhibit schedule form no nr number ref order invoice ticket case fy see total
    top up to from in on at by of and or the a an""".split()  # noqa: SIM905
)
# Units, post boxes and US military addresses: shapes nothing else has.
ADDRESS_UNIT_RE = re.compile(
    r"(?<![\w])(?:(?:Apt|Apartment|Suite)\.?\s*#?\d{1,5}[A-Za-z]?(?![\w])"
    r"|P\.?\s?O\.?\s?Box\s+\d{1,6}(?![\w])"
    r"|(?:(?:PSC|Unit|CMR)\s+\d{1,5},?\s*Box\s+\d{1,5}\s+|(?:USNS|USNV|USS|USCGC)\s+[\w-]+\s+)?(?:APO|FPO|DPO)\s+A[AEP]\s+\d{5}"
    r"(?![\w]))",
    re.IGNORECASE,
)
LEXICON: dict[str, tuple[str, ...]] = {
    dc.HEALTH: (
        "diagnosed with",
        "diagnosis",
        "diabetes",
        "diabetic",
        "cancer",
        "tumou?r",
        "chemotherapy",
        "HIV",
        "AIDS",
        "hepatitis",
        "depression",
        "anxiety disorder",
        "bipolar",
        "schizophrenia",
        "epilepsy",
        "asthma",
        "dementia",
        "alzheimer'?s",
        "pregnan(?:t|cy)",
        "miscarriage",
        "sick leave",
        "medical leave",
        "medical condition",
        "disability",
        "disabled",
        "prescription",
        "prescribed",
        "medication",
        "surgery",
        "allerg(?:y|ic)",
        "therapy",
        "psychiatric",
        "mental health",
        "blood pressure",
        "heart attack",
        "stroke",
        "covid(?:-19)?",
        "ADHD",
        "autism",
        "rehab",
        "addiction",
        "HbA1c",
    ),
    dc.FINANCIAL: (
        "salary",
        "salaries",
        "wages?",
        "annual income",
        "income",
        "credit score",
        "credit rating",
        "bankrupt(?:cy)?",
        "insolven(?:t|cy)",
        "debts?",
        "overdraft",
        "arrears",
        "loan default",
        "net worth",
        "tax return",
        "payslips?",
        "pay slips?",
        "garnish(?:ed|ment)",
        "foreclosure",
        "mortgage balance",
    ),
}
LEXICON_RES: dict[str, re.Pattern[str]] = {
    data_class: re.compile(r"(?<![\w])(?:" + "|".join(terms) + r")(?![\w])", re.IGNORECASE)
    for data_class, terms in LEXICON.items()
}


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def _find_cards(text: str) -> Iterator_:
    for match in CARD_RE.finditer(text):
        digits = _digits(match.group())
        if 12 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn.is_valid(digits):
            yield match.start(), match.end(), dc.PAYMENT_CARD, "card"


def _find_ibans(text: str) -> Iterator_:
    for regex in (IBAN_COMPACT_RE, IBAN_GROUPED_RE):
        for match in regex.finditer(text):
            value = match.group()
            end = match.end()
            while True:
                if iban.is_valid(value):
                    yield match.start(), end, dc.BANK_ACCOUNT, "iban"
                    break
                if " " not in value:
                    break
                value = value.rsplit(" ", 1)[0]  # a trailing word glued to the last group
                end = match.start() + len(value)


def _find_national_ids(text: str) -> Iterator_:
    for match in SSN_RE.finditer(text):
        if ssn.is_valid(match.group().replace(" ", "-")):
            yield match.start(), match.end(), dc.NATIONAL_ID, "us_ssn"
    for match in NATIONAL_OTHER_RE.finditer(text):
        value = match.group()
        for name, module in (("it_codicefiscale", codicefiscale), ("es_dni", dni), ("es_nie", nie), ("fr_nir", nir)):
            if module.is_valid(value):
                yield match.start(), match.end(), dc.NATIONAL_ID, name
                break


def _find_ips(text: str) -> Iterator_:
    for match in IPV4_RE.finditer(text):
        try:
            ipaddress.IPv4Address(match.group())
        except ValueError:
            continue
        yield match.start(), match.end(), dc.IP_ADDRESS, "ipv4"
    for match in IPV6_RE.finditer(text):
        if match.group().count(":") < 2:
            continue
        try:
            ipaddress.IPv6Address(match.group())
        except ValueError:
            continue
        yield match.start(), match.end(), dc.IP_ADDRESS, "ipv6"


def _find_phones(text: str) -> Iterator_:
    yield from _find_phone_shapes(text)
    yield from _find_slashed_phones(text)
    for match in PHONE_CONTEXT_RE.finditer(text):
        digits = _digits(match.group("value"))
        if 5 <= len(digits) <= 13 and not DATE_SHAPE_RE.match(match.group("value")):
            yield match.start("value"), match.end("value"), dc.PHONE, "phone_context"


def _find_driver_licences(text: str) -> Iterator_:
    for match in DRIVER_LICENCE_RE.finditer(text):
        value = match.group("value").strip()
        if len(_digits(value)) >= 5:
            start = match.start("value")
            yield start, start + len(match.group("value").rstrip()), dc.NATIONAL_ID, "us_driver_licence"


def _valid_date(value: str) -> bool:
    numbers = [int(part) for part in re.findall(r"\d+", value)]
    if re.match(r"\d{4}-", value):
        year, month, day = numbers[:3]
        return 1 <= month <= 12 and 1 <= day <= 31
    if re.match(r"\d{1,2}[./-]\d{1,2}[./-]\d", value):
        first, second = numbers[:2]
        return (1 <= first <= 31 and 1 <= second <= 12) or (1 <= first <= 12 and 1 <= second <= 31)
    return True  # written with a month name


def _find_dates(text: str) -> Iterator_:
    for match in DATE_RE.finditer(text):
        if _valid_date(match.group("value")):
            yield match.start(), match.end(), dc.DATE, "date"


def _find_phone_shapes(text: str) -> Iterator_:
    for match in PHONE_INTERNATIONAL_RE.finditer(text):
        raw = match.group()
        try:
            number = phonenumbers.parse(re.sub(r"\(0\)", "", raw), None)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(number) or 8 <= len(_digits(raw.split("x")[0])) <= 15:
            yield match.start(), match.end(), dc.PHONE, "phone_international"
    for match in PHONE_LOCAL_RE.finditer(text):
        raw = match.group()
        main = re.split(r"x", raw)[0]
        digits = _digits(main)
        if not 7 <= len(digits) <= 13 or DATE_SHAPE_RE.match(main.strip()):
            continue
        yield match.start(), match.end(), dc.PHONE, "phone_local"


# A national number with a slash between the area code and the subscriber ("0151/23525155", "089 / 12 34 56"),
# as written in German-speaking countries: a phone only when phonenumbers calls it a valid number of one of
# GOVERNANCE_PHONE_REGIONS, so fractions, years ("2023/2024") and references stay out.
PHONE_SLASHED_RE = re.compile(r"(?<![\w/.+-])\(?0\d{1,5}\)? ?/ ?\d{2,10}(?:[ -]\d{1,6}){0,3}(?![\w/]|[.-]\d)")


def _phone_regions() -> tuple[str, ...]:
    regions = getattr(settings, "GOVERNANCE_PHONE_REGIONS", ()) or ("GB",)
    return tuple(regions)


def _find_slashed_phones(text: str) -> Iterator_:
    if "/" not in text:
        return
    for match in PHONE_SLASHED_RE.finditer(text):
        for region in _phone_regions():
            try:
                number = phonenumbers.parse(match.group(), region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                yield match.start(), match.end(), dc.PHONE, "phone_national"
                break


def _find_emails(text: str) -> Iterator_:
    for match in EMAIL_RE.finditer(text):
        yield match.start(), match.end(), dc.EMAIL, "email"


def _find_credentials(text: str) -> Iterator_:
    for regex in CREDENTIAL_RES:
        for match in regex.finditer(text):
            yield match.start(), match.end(), dc.CREDENTIAL, "secret_format"
    for match in SECRET_ASSIGNMENT_RE.finditer(text):
        yield match.start("value"), match.end("value"), dc.CREDENTIAL, "secret_assignment"


def _find_dates_of_birth(text: str) -> Iterator_:
    for match in DOB_RE.finditer(text):
        yield match.start("value"), match.end("value"), dc.DATE_OF_BIRTH, "date_of_birth"


def _find_addresses(text: str) -> Iterator_:
    for match in STREET_RE.finditer(text):
        yield match.start(), match.end(), dc.POSTAL_ADDRESS, "street"
    for match in STREET_LEADING_RE.finditer(text):
        yield match.start(), match.end(), dc.POSTAL_ADDRESS, "street"
    for match in STREET_POSTCODE_CITY_RE.finditer(text):
        words = re.findall(r"[^\W\d_][\w'.-]*", match.group())[:-1]  # the last is the town
        if any(word.lower().strip(".") in NOT_STREET_WORDS for word in words):
            continue
        yield match.start(), match.end(), dc.POSTAL_ADDRESS, "street_postcode_city"
    for match in ADDRESS_UNIT_RE.finditer(text):
        yield match.start(), match.end(), dc.POSTAL_ADDRESS, "address_unit"


def _find_lexicon(text: str) -> Iterator_:
    for data_class, regex in LEXICON_RES.items():
        for match in regex.finditer(text):
            yield match.start(), match.end(), data_class, "lexicon"


Iterator_ = Iterable[tuple[int, int, str, str]]
PATTERN_FINDERS: tuple[Callable[[str], Iterator_], ...] = (
    _find_credentials,
    _find_cards,
    _find_ibans,
    _find_national_ids,
    _find_emails,
    _find_ips,
    _find_phones,
    _find_driver_licences,
    _find_dates_of_birth,
    _find_dates,
    _find_addresses,
    _find_lexicon,
)


PATTERN_CACHE_SIZE = 2048  # texts whose pattern findings are kept per process (a few KB each)
PATTERN_CACHE_MAX_CHARS = 20_000  # longer texts are scanned each time


def pattern_findings(text: str) -> list[Finding]:
    """Every pattern match, found in the prepared text and placed on the original text.

    The patterns depend on the text and the phone regions alone, so the findings of recent texts are kept:
    a prompt's instructions, and the passages many questions retrieve, are scanned once, not at each
    question."""
    if len(text) > PATTERN_CACHE_MAX_CHARS:
        return _pattern_findings(text)
    return list(_pattern_findings_kept(text, _phone_regions()))


@functools.lru_cache(maxsize=PATTERN_CACHE_SIZE)
def _pattern_findings_kept(text: str, phone_regions: tuple[str, ...]) -> tuple[Finding, ...]:
    return tuple(_pattern_findings(text))  # the regions are part of the key: _pattern_findings reads them


def _pattern_findings(text: str) -> list[Finding]:
    prepared, offsets = prepare(text)
    findings = []
    for finder in PATTERN_FINDERS:
        for start, end, data_class, detector in finder(prepared):
            if data_class != dc.CREDENTIAL:
                start, end = trim_span(prepared, start, end)
            if start >= end:
                continue
            start, end = to_original(start, end, offsets)
            findings.append(Finding(start, end, data_class, LAYER_PATTERNS, detector))
    return findings


# ---- optional NER ------------------------------------------------------------------------------------
NerBackend = Callable[[str], Iterable[tuple[int, int, str]]]
NER_ABSENT = "absent: no NER backend is configured (GOVERNANCE_NER_BACKEND); names are found by the known-entity layer"
_ner_cache: dict[str, NerBackend | None] = {}


def ner_backend() -> NerBackend | None:
    """The configured NER callable (dotted path returning (start, end, data_class) triples), or None."""
    path = getattr(settings, "GOVERNANCE_NER_BACKEND", "")
    if not path:
        return None
    if path not in _ner_cache:
        _ner_cache[path] = import_string(path)
    return _ner_cache[path]


def ner_status() -> str:
    backend = ner_backend()
    return NER_ABSENT if backend is None else f"present: {settings.GOVERNANCE_NER_BACKEND}"


def ner_findings(text: str) -> list[Finding]:
    backend = ner_backend()
    if backend is None:
        return []
    return [Finding(start, end, data_class, LAYER_NER, "ner") for start, end, data_class in backend(text)]


# ---- all layers --------------------------------------------------------------------------------------
def detect(text: str, *, layers: Sequence[str] = LAYERS, context: Collection[str] = ()) -> list[Finding]:
    """Every sensitive span of `text`, overlaps resolved. Raises on any internal failure (callers fail closed)."""
    return detect_parts([text], layers=layers, context=context)[0]


def detect_parts(
    texts: Sequence[str], *, layers: Sequence[str] = LAYERS, context: Collection[str] = ()
) -> list[list[Finding]]:
    """The findings of each text of one prompt. `context` names who the prompt is about ("customer:12");
    a person named in full in any text is in context for all of them, so their given name alone is found."""
    from governance.known_entities import known_entity_findings_many

    known: list[list[Finding]] = (
        known_entity_findings_many(texts, context=context) if LAYER_KNOWN in layers else [[] for _ in texts]
    )
    results = []
    for text, known_findings in zip(texts, known, strict=True):
        findings: list[Finding] = list(known_findings)
        if text and LAYER_PATTERNS in layers:
            findings.extend(pattern_findings(text))
        if text and LAYER_NER in layers:
            findings.extend(ner_findings(text))
        results.append(resolve_overlaps(findings))
    return results
