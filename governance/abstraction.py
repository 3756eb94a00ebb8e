"""The `abstract` action: a value is replaced by a generalisation that keeps what a model needs to reason.

A date of birth becomes an age band, an address its city and country, an amount a range, a person their
role or tier; every other class gets a plain description ("<an e-mail address>"). Unlike a placeholder an
abstraction is not restored in the answer: several values share one generalisation, and nothing about the
original is kept for the conversation.

Apps that know more about a value than its text (the customer records know a customer's tier and full
address) register a describer (`register_describer`); the first description wins, else the generic one.
Nothing here logs or stores a value.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable
from datetime import date

from governance import classes as dc

Describer = Callable[[str, str], "str | None"]  # (data class, value) -> a description without brackets
_describers: dict[str, Describer] = {}
_lock = threading.Lock()

# Also for classes other modules add later (by name, so this module needs no change for them).
GENERIC: dict[str, str] = {
    dc.PERSON: "a person",
    dc.EMAIL: "an e-mail address",
    dc.PHONE: "a phone number",
    dc.POSTAL_ADDRESS: "a postal address",
    dc.NATIONAL_ID: "a national identity number",
    dc.PAYMENT_CARD: "a payment card number",
    dc.BANK_ACCOUNT: "a bank account number",
    dc.IP_ADDRESS: "an IP address",
    dc.CREDENTIAL: "a credential",
    dc.DATE_OF_BIRTH: "a date of birth",
    dc.HEALTH: "health information",
    dc.FINANCIAL: "financial information",
    dc.CUSTOMER_FIELD: "a value from a customer record",
    "ACCOUNT_NUMBER": "an account number",
    "DATE": "a date",
}


def register_describer(name: str, describer: Describer) -> None:
    """Add (or replace) a named describer. Safe to call in AppConfig.ready()."""
    with _lock:
        _describers[name] = describer


def registered_describers() -> list[str]:
    return sorted(_describers)


def abstract(data_class: str, value: str, *, today: date | None = None) -> str:
    """The generalisation sent instead of `value`, in angle brackets: "<aged 40-49>", "<a person>"."""
    text = clean(value)
    description = _describe(data_class, text) or _by_shape(data_class, text, today or date.today())
    return f"<{description or GENERIC.get(data_class, 'a ' + data_class.lower().replace('_', ' '))}>"


def clean(value: str) -> str:
    """NFKC, without format characters (zero-width space/joiner, soft hyphen, bidi marks), one space per gap
    (line breaks kept: they separate the parts of an address)."""
    folded = "".join(ch for ch in unicodedata.normalize("NFKC", value) if unicodedata.category(ch) != "Cf")
    return "\n".join(" ".join(line.split()) for line in folded.splitlines() if line.strip())


def _describe(data_class: str, value: str) -> str | None:
    with _lock:
        describers = list(_describers.values())
    for describer in describers:
        try:
            description = describer(data_class, value)
        except Exception:  # noqa: BLE001 - a failing describer falls back to the generic description
            description = None
        if description:
            return description.strip("<> ")
    return None


def _by_shape(data_class: str, value: str, today: date) -> str | None:
    if data_class == dc.DATE_OF_BIRTH:
        return age_band(value, today)
    if data_class == dc.POSTAL_ADDRESS:
        place = city_and_country(value)
        return f"an address in {place}" if place else None
    if data_class in (dc.FINANCIAL, "ACCOUNT_NUMBER"):
        return amount_range(value) or (GENERIC["ACCOUNT_NUMBER"] if _looks_like_identifier(value) else None)
    if data_class == dc.PAYMENT_CARD:
        brand = _card_brand(value)
        return f"a {brand} card number" if brand else None
    if data_class == dc.BANK_ACCOUNT:
        match = re.match(r"\s*([A-Za-z]{2})\d{2}", value)
        return f"a bank account in {match.group(1).upper()}" if match else None
    if data_class == dc.PHONE:
        match = re.match(r"\s*(?:\+|00)(\d{1,3})", value)
        return f"a phone number with country code +{match.group(1)}" if match else None
    if data_class == dc.EMAIL and "@" in value:
        return "an e-mail address"
    if data_class == "DATE":
        year = _year(value)
        return f"a date in {year}" if year else None
    return None


# ---- dates of birth -> age bands -------------------------------------------------------------------------
MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january", "januar", "janvier"),
            ("feb", "february", "februar", "fevrier", "février"),
            ("mar", "march", "märz", "maerz", "mars"),
            ("apr", "april", "avril"),
            ("may", "mai"),
            ("jun", "june", "juni", "juin"),
            ("jul", "july", "juli", "juillet"),
            ("aug", "august", "aout", "août"),
            ("sep", "sept", "september", "septembre"),
            ("oct", "october", "oktober", "octobre"),
            ("nov", "november", "novembre"),
            ("dec", "december", "dezember", "decembre", "décembre"),
        ),
        start=1,
    )
    for name in names
}
_ISO = re.compile(r"(?<!\d)((?:19|20)\d\d)[-./](\d{1,2})[-./](\d{1,2})(?!\d)")
_DAY_FIRST = re.compile(r"(?<!\d)(\d{1,2})[-./](\d{1,2})[-./]((?:19|20)?\d\d)(?!\d)")
_WORDS = re.compile(r"[^\W\d_]+")


def _year(value: str) -> int | None:
    match = re.search(r"(?<!\d)((?:19|20)\d\d)(?!\d)", value)
    return int(match.group(1)) if match else None


def birth_date(value: str, today: date) -> date | None:
    """The date in a date-of-birth finding ("1984-03-12", "12/03/1984", "12 March 1984", "March 12, 1984")."""
    match = _ISO.search(value)
    if match:
        year, month, day = (int(group) for group in match.groups())
    else:
        match = _DAY_FIRST.search(value)
        if match:
            day, month, year = (int(group) for group in match.groups())
            if month > 12 >= day:  # "03/12/1984" may be month first; only a day above 12 tells
                day, month = month, day
            if year < 100:  # two digits: the most recent such year that is not in the future
                year += 2000 if 2000 + year <= today.year else 1900
        else:
            year_found = _year(value)
            month_found = next((MONTHS[w.lower()] for w in _WORDS.findall(value) if w.lower() in MONTHS), None)
            day_match = re.search(r"(?<!\d)(\d{1,2})(?:st|nd|rd|th)?(?!\d)", value)
            if year_found is None or month_found is None:
                return None
            year, month, day = year_found, month_found, int(day_match.group(1)) if day_match else 1
    try:
        return date(year, month, day)
    except ValueError:
        return None


def age_band(value: str, today: date, *, width: int = 10) -> str | None:
    born = birth_date(value, today)
    if born is None or born > today:
        return None
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    low = age - age % width
    return f"aged under {width}" if low == 0 else f"aged {low}-{low + width - 1}"


# ---- addresses -> city and country -------------------------------------------------------------------------
# Countries as they end an address line; anything else that ends an address without a digit is taken as a city.
COUNTRIES = frozenset(
    name.casefold()
    for name in (
        "Austria", "Belgium", "België", "Belgique", "Canada", "Czech Republic", "Czechia", "Denmark", "England",
        "Finland", "France", "Germany", "Deutschland", "Greece", "Hungary", "Ireland", "Italy", "Italia",
        "Luxembourg", "Netherlands", "The Netherlands", "Nederland", "Norway", "Poland", "Polska", "Portugal",
        "Scotland", "Spain", "España", "Sweden", "Sverige", "Switzerland", "Schweiz", "Suisse", "UK",
        "United Kingdom", "Great Britain", "US", "USA", "United States", "United States of America", "Wales",
        "Australia", "New Zealand", "India", "Japan", "Brazil", "Mexico", "South Africa", "Nigeria", "Kenya",
        "Singapore", "China",
    )
)  # fmt: skip
_STATE = re.compile(r"^[A-Z]{2}$")  # "IL" in "Springfield, IL 62704"
_HOUSE_NUMBER_LAST = re.compile(r"^\D+\s\d{1,4}[a-zA-Z]?$")  # "Dok Noord 12", "Hauptstraße 5"


def city_and_country(address: str) -> str | None:
    """ "Dok Noord 12, 9000 Ghent, Belgium" -> "Ghent, Belgium"; "12 Baker Street, London NW1 6XE" -> "London"."""
    from governance.detection import STREET_RE

    parts = [part.strip() for part in re.split(r"[\n,;]+", address) if part.strip()]
    if len(parts) < 2:
        return None
    country = parts.pop() if parts[-1].casefold() in COUNTRIES else ""
    places = []
    for part in parts[1:]:  # the first part is the street (or a name or company line before it)
        if STREET_RE.search(part) or _HOUSE_NUMBER_LAST.match(part):
            continue
        words = [w for w in part.split() if not any(ch.isdigit() for ch in w) and not _STATE.match(w)]
        if words:
            places.append(" ".join(words))
    found = ", ".join(piece for piece in (places[-1] if places else "", country) if piece)
    return found or None


# ---- amounts -> ranges ----------------------------------------------------------------------------------
_AMOUNT = re.compile(
    r"(?P<before>[$€£¥]|\b(?:EUR|USD|GBP|CHF)\b)?\s?"
    r"(?P<number>\d{1,3}(?:[,. ]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?)"
    r"\s?(?P<scale>k|m|bn|thousand|million)?\b\s?(?P<after>[$€£¥]|\b(?:EUR|USD|GBP|CHF|euros?|dollars?|pounds?)\b)?",
    re.IGNORECASE,
)
_SCALES = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "bn": 1e9}


def amount_range(value: str) -> str | None:
    """ "£45,250" -> "an amount between £10,000 and £100,000" (an order of magnitude); None without a currency."""
    for match in _AMOUNT.finditer(value):
        currency = match.group("before") or match.group("after")
        if not currency:
            continue
        number = re.sub(r"[,. ](?=\d{3}(?:\D|$))", "", match.group("number")).replace(",", ".")
        try:
            amount = float(number) * _SCALES.get((match.group("scale") or "").lower(), 1)
        except ValueError:
            continue
        low = 10 ** (len(str(int(amount))) - 1) if amount >= 1 else 0
        symbol = currency if len(currency) == 1 else currency.upper().rstrip("S") + " "
        if symbol.strip() in ("EURO", "DOLLAR", "POUND"):
            symbol = {"EURO": "€", "DOLLAR": "$", "POUND": "£"}[symbol.strip()]
        return f"an amount between {symbol}{low:,} and {symbol}{max(low * 10, 10):,}"
    return None


def _looks_like_identifier(value: str) -> bool:
    digits = sum(ch.isdigit() for ch in value)
    return digits >= 4 and " " not in value.strip()


def _card_brand(value: str) -> str | None:
    digits = "".join(ch for ch in value if ch.isdigit())
    if digits.startswith("4"):
        return "Visa"
    if digits[:2] in {"51", "52", "53", "54", "55"} or "2221" <= digits[:4] <= "2720":
        return "Mastercard"
    if digits[:2] in {"34", "37"}:
        return "American Express"
    return None


# ---- people in the user directory: their role ---------------------------------------------------------------
def _user_directory(data_class: str, value: str) -> str | None:
    """A colleague is described by their roles, from the same directory the known-entity layer reads."""
    if data_class != dc.PERSON:
        return None
    from django.contrib.auth.models import User
    from django.db.models import Q

    tokens = person_tokens(value)
    if not tokens:
        return None
    matches = Q()
    for token in tokens:
        matches &= Q(first_name__iregex=_word(token)) | Q(last_name__iregex=_word(token))
    found = list(User.objects.filter(matches, is_active=True).prefetch_related("groups")[:5])
    if not found:
        return None
    roles = sorted({group.name for user in found for group in user.groups.all()})
    if len(found) == 1 and roles:
        return f"a colleague ({', '.join(roles)})"
    return "a colleague"


TITLES = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "miss",
        "mx",
        "dr",
        "prof",
        "sir",
        "dame",
        "herr",
        "frau",
        "mme",
        "mlle",
        "m",
        "madame",
        "monsieur",
        "dhr",
        "mevr",
        "sr",
        "sra",
        "jr",
        "sr",
        "ii",
        "iii",
        "iv",
    ]
)
PARTICLES = frozenset(["van", "der", "den", "de", "la", "le", "du", "von", "zu", "da", "di", "del", "dos", "das", "y"])


def person_tokens(value: str) -> list[str]:
    """The distinctive words of a name as written: no titles, suffixes, particles or initials."""
    words = [w.strip(".,'") for w in re.split(r"[\s,]+", clean(value))]
    return [w for w in words if len(w) > 1 and w.casefold() not in TITLES and w.casefold() not in PARTICLES]


def _word(token: str) -> str:
    return r"(^|[^[:alnum:]])" + re.escape(token) + r"([^[:alnum:]]|$)"


register_describer("users", _user_directory)
