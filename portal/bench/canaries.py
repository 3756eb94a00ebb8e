"""Hard canary customers and the prompts that carry their values, generated with Faker from a seed.

Each customer is a CSV row for the real import (and an interaction row with a staff member and a shop
manager); each prompt is one or two questions in a *style* that real staff write and detectors miss:
names with invisible characters inside, account numbers in markdown tables, names written differently from
the record ("Last, First", "First M. Last Jr.", particles, "Mrs. Last", the given name alone in a
conversation about the customer), staff and shop managers' names, addresses written in notes, an
organisation that is part of its own street name, a phone in brackets, national phone shapes.

Every value a prompt carries is a `Planted` value with its field and style; `portal.bench.egress` looks for
each of them in what the provider received. The same seed gives the same set (Faker is pinned by hash).
"""

from __future__ import annotations

import csv
import io
import random
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import phonenumbers

# kinds of comparison: "text" (a substring, normalised), "word" (a whole word), "digits" (inside a run of digits)
TEXT, WORD, DIGITS = "text", "word", "digits"
STYLES = (
    "plain",
    "zero_width",
    "account_table",
    "record_last_first",
    "record_middle_suffix",
    "record_particle",
    "title_surname",
    "given_name_in_context",
    "staff_name",
    "shop_manager",
    "address_in_notes",
    "org_in_street",
    "phone_brackets",
    "national_phone",
)
RECORD_FORMS = ("plain", "last_first", "middle_suffix", "particle")
CONTEXT_STYLE = "customer_context"  # the record's own values, sent as customer parts of a conversation about it
INVISIBLE = ("\u200b", "\u200c", "\u200d", "\u00ad", "\u2060", "\ufeff")
TITLES = ("Mrs.", "Mr", "Ms", "Herr", "Frau", "Mme", "M.", "Dhr.", "Mevr.", "Dr.")
PARTICLES = ("van der", "van", "de", "von", "da", "van den", "di", "du")
SUFFIXES = ("Jr.", "Sr.", "II", "III")
# Regions of the customers: Faker locale, phone region, country as written in an address.
REGIONS = (
    ("en_GB", "GB", "United Kingdom"),
    ("nl_NL", "NL", "Netherlands"),
    ("nl_BE", "BE", "Belgium"),
    ("de_DE", "DE", "Germany"),
    ("fr_FR", "FR", "France"),
    ("en_US", "US", "USA"),
    ("en_IE", "IE", "Ireland"),
)
STREET_WORDS = ("Road", "Street", "Lane", "Avenue", "Way", "Close")
# Words that are names and ordinary English words at once: a leak check on them would count the prompt's own text.
COMMON_WORDS = frozenset(
    word
    for line in (
        "will may grant hall green white black young king long price rose brown wood page mark bill hope",
        "joy faith case cook baker banks bell bush day dean fox hill hunt lane lee love moss nash park",
        "pope reed rich ross shaw snow stone ward west wise hart holmes street road close way avenue",
        "north south east well frank earnest summer winter spring little short small large gold silver",
        "golden chase guy miles bond cash sale rock hunter fisher porter walker carter cooper turner",
        "parker mason taylor hope grace sunny june april august hazel ivy holly dawn crystal amber ruby",
        "pearl star august van der den de von da di du la le",
    )
    for word in line.split()
)


@dataclass(frozen=True)
class Planted:
    """A value that must not reach the provider in clear."""

    field: str  # name, given_name, surname, organisation, email, phone, address, account, staff_name, shop_manager
    style: str
    value: str
    kind: str = TEXT


@dataclass
class HardCustomer:
    index: int
    first: str
    last: str
    middle: str
    particle: str
    suffix: str
    record_form: str
    region: str
    organisation: str
    email: str
    phone_international: str
    phone_national: str
    phone_local: str  # the subscriber part only, in pairs ("61 51 81")
    street_line: str
    postcode: str
    postal_address: str
    account: str
    tier: str
    notes: str
    shop_manager: tuple[str, str]
    shop_address_line: str
    staff_username: str
    org_in_street: bool

    @property
    def surname(self) -> str:
        return f"{self.particle} {self.last}".strip() if self.particle else self.last

    @property
    def record_name(self) -> str:
        if self.record_form == "last_first":
            return f"{self.last}, {self.first}"
        if self.record_form == "middle_suffix":
            return f"{self.first} {self.middle}. {self.last} {self.suffix}"
        if self.record_form == "particle":
            return f"{self.first} {self.particle} {self.last}"
        return f"{self.first} {self.last}"

    @property
    def spoken_name(self) -> str:
        """How staff write the name in a question: "First Last", whatever the record holds."""
        return f"{self.first} {self.last}"

    def csv_row(self) -> dict[str, str]:
        return {
            "name": self.record_name,
            "organisation": self.organisation,
            "email": self.email,
            "phone": self.phone_international,
            "address": self.postal_address,
            "account number": self.account,
            "tier": self.tier,
            "notes": self.notes,
        }

    def record_values(self) -> list[Planted]:
        """The record's values as the customer parts of a conversation about this customer carry them."""
        values = [
            Planted("given_name", CONTEXT_STYLE, self.first, WORD),
            Planted("surname", CONTEXT_STYLE, self.last, WORD),
            Planted("email", CONTEXT_STYLE, self.email),
            Planted("phone", CONTEXT_STYLE, _digits(self.phone_national).lstrip("0"), DIGITS),
            Planted("address", CONTEXT_STYLE, self.street_line),
            Planted("postcode", CONTEXT_STYLE, self.postcode, WORD),
            Planted("account", CONTEXT_STYLE, _digits(self.account), DIGITS),
            Planted("shop_manager", CONTEXT_STYLE, self.shop_manager[1], WORD),
        ]
        if not self.org_in_street:  # there the organisation is a word of the street, counted with the address
            values.append(Planted("organisation", CONTEXT_STYLE, self.organisation))
        return values


@dataclass(frozen=True)
class StaffMember:
    username: str
    first: str
    last: str


@dataclass(frozen=True)
class CanaryPrompt:
    index: int
    customer: int  # HardCustomer.index
    style: str
    about_customer: bool  # the conversation is about the customer: its record goes along as customer parts
    turns: tuple[str, ...]
    planted: tuple[Planted, ...]


@dataclass
class CanarySet:
    seed: int
    customers: list[HardCustomer]
    staff: list[StaffMember]
    prompts: list[CanaryPrompt] = field(default_factory=list)

    def customers_csv(self) -> bytes:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(self.customers[0].csv_row()))
        writer.writeheader()
        for customer in self.customers:
            writer.writerow(customer.csv_row())
        return out.getvalue().encode()

    def interactions_csv(self) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["customer e-mail", "channel", "time", "staff", "summary", "text"])
        for customer in self.customers:
            manager = " ".join(customer.shop_manager)
            writer.writerow([
                customer.email, "phone", f"2026-0{1 + customer.index % 9}-1{customer.index % 10}",
                customer.staff_username, f"Call with the shop manager, {manager}",
                f"{manager} runs their shop at {customer.shop_address_line} and wants the new price list.",
            ])  # fmt: skip
        return out.getvalue().encode()


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def _ascii(value: str) -> str:
    folded = unicodedata.normalize("NFKD", value)
    return re.sub(r"[^a-z0-9]+", "", "".join(ch for ch in folded if not unicodedata.combining(ch)).lower())


class _Names:
    """Faker names, unique across the set, none an ordinary English word or shorter than four letters."""

    def __init__(self, fakers: dict[str, Any], rng: random.Random, reserved: set[str]) -> None:
        self.fakers, self.rng, self.used = fakers, rng, set(reserved)

    def _word(self, make: Any) -> str:
        for _ in range(200):
            word = str(make()).split()[-1].strip(".,")
            key = word.casefold()
            if len(word) >= 4 and word.replace("-", "").isalpha() and key not in COMMON_WORDS and key not in self.used:
                self.used.add(key)
                return word
        raise RuntimeError("Faker ran out of distinct names")

    def first(self, locale: str) -> str:
        return self._word(self.fakers[locale].first_name)

    def last(self, locale: str) -> str:
        return self._word(self.fakers[locale].last_name)


def _phone(rng: random.Random, region: str, mobile: bool) -> phonenumbers.PhoneNumber:
    kind = phonenumbers.PhoneNumberType.MOBILE if mobile else phonenumbers.PhoneNumberType.FIXED_LINE
    example = phonenumbers.example_number_for_type(region, kind)
    if example is None:  # pragma: no cover - every region of REGIONS has examples of both kinds
        raise ValueError(f"no example phone number for {region}")
    digits = str(example.national_number)
    for _ in range(200):
        tail = "".join(str(rng.randint(0, 9)) for _ in range(min(6, len(digits) - 2)))
        candidate = phonenumbers.PhoneNumber(country_code=example.country_code,
                                             national_number=int(digits[: len(digits) - len(tail)] + tail))  # fmt: skip
        if phonenumbers.is_valid_number(candidate) and tail[0] != "0":
            return candidate
    return example


def _national_shape(number: phonenumbers.PhoneNumber, region: str, rng: random.Random) -> str:
    """The number as people in that country write it, not as phonenumbers prints it."""
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    digits = _digits(national)
    if region == "NL" and digits.startswith("06"):
        return f"06-{digits[2:]}"  # "06-10446904"
    if region == "BE":
        return f"{digits[:4]} {digits[4:6]} {digits[6:8]} {digits[8:]}" if len(digits) == 10 else national
    if region == "DE":
        return rng.choice([national, f"{digits[:4]}/{digits[4:]}", f"{digits[:4]}-{digits[4:]}"])
    if region == "FR":
        return rng.choice([national, ".".join(digits[i : i + 2] for i in range(0, 10, 2))])
    return national


def _address(fake: Any, region: str, country: str, street: str, number: str) -> tuple[str, str, str]:
    """(street line, whole address with line breaks, postcode) in the order the country writes them."""
    postcode, city = fake.postcode(), fake.city()
    if region in ("NL", "BE", "DE"):
        line = f"{street} {number}"
        return line, f"{line}\n{postcode} {city}\n{country}", postcode
    if region == "FR":
        line = f"{number} {street}"
        return line, f"{line}\n{postcode} {city}\n{country}", postcode
    if region == "US":
        line = f"{number} {street}"
        return line, f"{line}\n{city}, {fake.state_abbr()} {postcode}\n{country}", postcode
    line = f"{number} {street}"
    return line, f"{line}\n{city} {postcode}\n{country}", postcode


ERROR_NO_FAKER = (
    "The canary generator needs Faker, a development dependency: "
    "pip install --require-hashes -r requirements/dev.txt (make install does)."
)


def generate(*, seed: int, customers: int, prompts_per_customer: int = 3, staff: int = 8) -> CanarySet:
    try:
        from faker import Faker
    except ImportError as error:  # a production install has only requirements/base.txt
        raise RuntimeError(ERROR_NO_FAKER) from error

    from portal.assistant.pipeline import SYSTEM_PROMPT

    rng = random.Random(seed)
    fakers = {}
    for offset, (locale, _, _) in enumerate(REGIONS):
        fakers[locale] = Faker(locale)
        fakers[locale].seed_instance(seed * 100 + offset)
    names = _Names(fakers, rng, {word.casefold().strip(".,") for word in SYSTEM_PROMPT.split()})
    team = [
        StaffMember(f"eval-staff-{n}", names.first("en_GB"), names.last(rng.choice(REGIONS)[0])) for n in range(staff)
    ]
    hard: list[HardCustomer] = []
    for index in range(customers):
        locale, region, country = REGIONS[index % len(REGIONS)]
        fake = fakers[locale]
        record_form = RECORD_FORMS[index % len(RECORD_FORMS)] if index % 5 else "plain"
        first, last = names.first(locale), names.last(locale)
        org_in_street = index % 6 == 5
        if org_in_street:
            core = names.last("en_GB")
            organisation, street = core, f"{core} {rng.choice(STREET_WORDS)}"
        else:
            organisation = f"{names.last(locale)} {rng.choice(['Trading', 'Logistics', 'Bakeries', 'Analytics'])}"
            street = fake.street_name()
        number = str(rng.randint(2, 240))
        street_line, postal_address, postcode = _address(fake, region, country, street, number)
        if org_in_street:  # kept on one line, as many records are: the whole address is one value
            postal_address = ", ".join(postal_address.split("\n"))
        phone = _phone(rng, region, mobile=index % 2 == 0)
        national = _national_shape(phone, region, rng)
        subscriber = _digits(national)[-6:]
        shop_street = fake.street_name()
        shop_line, _, _ = _address(fake, region, country, shop_street, str(rng.randint(2, 99)))
        domain = f"{_ascii(organisation)[:18] or 'mail'}{index}.example"
        customer = HardCustomer(
            index=index, first=first, last=last, middle=rng.choice("ABCDEFGHJKLMNPRSTW"),
            particle=rng.choice(PARTICLES) if record_form == "particle" else "",
            suffix=rng.choice(SUFFIXES), record_form=record_form, region=region, organisation=organisation,
            email=f"{_ascii(first)}.{_ascii(last)}@{domain}",
            phone_international=phonenumbers.format_number(phone, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
            phone_national=national, phone_local=" ".join(subscriber[i : i + 2] for i in range(0, 6, 2)),
            street_line=street_line, postcode=postcode, postal_address=postal_address,
            account=f"ACC-{rng.randint(10_000_000, 99_999_999)}", tier=rng.choice(["standard", "priority", "key"]),
            notes="", shop_manager=(names.first(locale), names.last(locale)), shop_address_line=shop_line,
            staff_username=team[index % len(team)].username, org_in_street=org_in_street,
        )  # fmt: skip
        street_and_city = " ".join(re.split(r"\n|, ", postal_address)[:2])  # "Dok Noord 12 9000 Ghent": no commas
        customer.notes = (
            f"Deliveries go to {street_and_city}. "
            f"Prefers e-mail; speak to {customer.shop_manager[0]} {customer.shop_manager[1]} about orders."
        )
        hard.append(customer)
    canaries = CanarySet(seed=seed, customers=hard, staff=team)
    general = [style for style in STYLES if not style.startswith("record_")]
    for customer in hard:
        styles: list[str] = []
        if customer.record_form != "plain":
            styles.append(f"record_{customer.record_form}")
        position = customer.index * prompts_per_customer
        while len(styles) < min(prompts_per_customer, len(general)):
            style = general[position % len(general)]
            position += 1
            if style not in styles and (style != "org_in_street" or customer.org_in_street):
                styles.append(style)
        if customer.org_in_street and "org_in_street" not in styles:
            styles[-1] = "org_in_street"  # every such customer is asked about its address once
        for style in styles[:prompts_per_customer]:
            canaries.prompts.append(_prompt(len(canaries.prompts), customer, style, team, rng))
    return canaries


def _name_values(customer: HardCustomer, style: str) -> list[Planted]:
    return [Planted("given_name", style, customer.first, WORD), Planted("surname", style, customer.last, WORD)]


def _invisible(word: str, rng: random.Random) -> str:
    cut = rng.randint(1, len(word) - 1)
    return word[:cut] + rng.choice(INVISIBLE) + word[cut:]


def _prompt(index: int, c: HardCustomer, style: str, team: list[StaffMember], rng: random.Random) -> CanaryPrompt:
    about = index % 2 == 1  # half the conversations are opened from the customer's page
    name = c.spoken_name
    planted: list[Planted] = []
    turns: tuple[str, ...]
    if style == "plain":  # the control: the name exactly as in the record
        turns = (f"What do we know about {c.record_name}? Please draft a short e-mail to {c.email} about the refund.",)
        planted = [*_name_values(c, style), Planted("email", style, c.email)]
    elif style == "zero_width":
        written = f"{_invisible(c.first, rng)} {_invisible(c.last, rng)}"
        turns = (f"Can you summarise the complaint from {written} and suggest a reply?",)
        planted = _name_values(c, style)
    elif style == "account_table":
        turns = (
            "Please check these accounts before the call:\n\n| Customer | Account | Status |\n|---|---|---|\n"
            f"| {name} | {c.account} | overdue |\n\nWhat should I say about the late payment?",
        )
        planted = [*_name_values(c, style), Planted("account", style, _digits(c.account), DIGITS)]
    elif style.startswith("record_"):  # the record holds another form of the name: the question says "First Last"
        turns = (f"{name} called about the delayed order. What can we offer as an apology?",)
        planted = _name_values(c, style)
    elif style == "title_surname":
        turns = (f"{rng.choice(TITLES)} {c.last} asked whether the invoice can be split. How do I answer?",)
        planted = [Planted("surname", style, c.last, WORD)]
    elif style == "given_name_in_context":
        about = True
        turns = (
            "Summarise this customer's situation in two sentences.",
            f"Thanks. Draft a friendly reply starting 'Dear {c.first},' and tell {c.first} the parcel ships Monday.",
        )
        planted = [Planted("given_name", style, c.first, WORD)]
    elif style == "staff_name":
        colleague = team[c.index % len(team)]
        turns = (
            f"{colleague.first} {colleague.last} from accounts approved a refund for {name}. "
            f"Write a note to {colleague.first} confirming the amount.",
        )
        planted = [
            Planted("staff_name", style, colleague.first, WORD),
            Planted("staff_name", style, colleague.last, WORD),
            *_name_values(c, style),
        ]
    elif style == "shop_manager":
        about = True
        turns = (f"Who runs this customer's shop, and what should I ask {c.shop_manager[0]} on the next call?",)
        planted = [
            Planted("shop_manager", style, c.shop_manager[0], WORD),
            Planted("shop_manager", style, c.shop_manager[1], WORD),
        ]
    elif style == "address_in_notes":
        about = True
        parts = c.postal_address.split("\n") if "\n" in c.postal_address else c.postal_address.split(", ")
        turns = (f"The courier asks where to deliver: is it {parts[0]}, {parts[1]}? Write him a short answer.",)
        planted = [Planted("address", style, c.street_line), Planted("postcode", style, c.postcode, WORD)]
    elif style == "org_in_street":
        street_and_city = ", ".join(c.postal_address.split(", ")[:-1])
        turns = (f"Send the replacement part to {street_and_city} and draft the cover letter for {c.organisation}.",)
        planted = [Planted("address", style, c.street_line), Planted("postcode", style, c.postcode, WORD)]
    elif style == "phone_brackets":
        turns = (f"Please call {name} today ({c.phone_international}) and explain the refund timeline.",)
        planted = [*_name_values(c, style), Planted("phone", style, _digits(c.phone_national).lstrip("0"), DIGITS)]
    elif style == "national_phone":
        local = index % 3 == 0
        number = c.phone_local if local else c.phone_national
        turns = (f"The customer left a voicemail from {number}; draft what I should say when I call back.",)
        planted = [Planted("phone", style, _digits(number).lstrip("0"), DIGITS)]
    else:  # pragma: no cover - STYLES and this function change together
        raise ValueError(style)
    if about:
        seen = {(p.field, p.value) for p in planted}
        planted += [p for p in c.record_values() if (p.field, p.value) not in seen]
    return CanaryPrompt(index=index, customer=c.index, style=style, about_customer=about, turns=turns,
                        planted=tuple(planted))  # fmt: skip
