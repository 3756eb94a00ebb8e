"""Pseudonymization over every data class, with values right next to punctuation and names that overlap.

With a policy that pseudonymizes every class, whatever the text: no value reaches the prompt, the manifest
holds none, and re-identifying the prompt gives back the text exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum import iban, luhn
from stdnum.us import ssn

from governance import classes as dc
from governance import known_entities
from governance.gate import GatedPrompt, PromptPart, egress_gate
from tests.governance.conftest import CLOUD

pytestmark = pytest.mark.django_db

EVERYTHING_PSEUDONYMIZED = {"roles": {"Staff": {"classes": dict.fromkeys(dc.DATA_CLASSES, dc.PSEUDONYMIZE)}}}
PROJECT = "Project Nightjar"  # a term-list value (CUSTOMER_FIELD)
ACCOUNTS = ["ACC-0048151623", "KT 7730 0421"]  # customer account numbers that are not IBANs (ACCOUNT_NUMBER)


# ---- values of every class that detection finds ---------------------------------------------------------
def _card(digits: str) -> str:
    number = "4" + digits + luhn.calc_check_digit("4" + digits)
    return number


cards = st.text("0123456789", min_size=14, max_size=14).map(_card).filter(lambda n: len(set(n)) > 1)
cards = cards | cards.map(lambda n: " ".join(n[i : i + 4] for i in range(0, 16, 4)))
ibans = st.text("0123456789", min_size=18, max_size=18).map(
    lambda bban: "DE" + iban.calc_check_digits("DE00" + bban) + bban
)
ibans = ibans | ibans.map(lambda n: " ".join(n[i : i + 4] for i in range(0, len(n), 4)))
ssns = st.builds(
    lambda area, group, serial: f"{area:03d}-{group:02d}-{serial:04d}",
    st.integers(1, 665),
    st.integers(1, 99),
    st.integers(1, 9999),
).filter(ssn.is_valid)
phones = st.builds(
    lambda template, digits: template.format(digits),
    st.sampled_from(["+44 20 7946 {}", "+1 212 555 {}", "+49 30 901820{}", "(020) 7946 {}"]),
    st.integers(1000, 9999),
)
ips = st.builds(lambda *parts: ".".join(map(str, parts)), *[st.integers(1, 254)] * 4)
emails = st.from_regex(r"[a-z]{2,8}(\.[a-z]{2,8})?@[a-z]{3,8}\.(org|com|net)", fullmatch=True)
secrets = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789", min_size=24, max_size=30).map(
    lambda tail: "sk-proj-" + tail
)
streets = st.builds(
    lambda number, name, suffix: f"{number} {name} {suffix}",
    st.integers(1, 999),
    st.sampled_from(["Baker", "Elm", "Harbour", "Queen's"]),
    st.sampled_from(["Street", "Avenue", "Road", "Lane"]),
)
births = st.builds(
    lambda day, month, year: f"{day} {month} {year}",
    st.integers(1, 28),
    st.sampled_from(["March", "July", "Dec"]),
    st.integers(1940, 2005),
)
dates = st.builds(
    lambda day, month, year, form: form.format(
        day=day, month=month, year=year, m=["March", "July", "Dec"].index(month) + 3
    ),
    st.integers(1, 28),
    st.sampled_from(["March", "July", "Dec"]),
    st.integers(1990, 2030),
    st.sampled_from(["{day} {month} {year}", "{month} {day}, {year}", "{year}-{m:02d}-{day:02d}"]),
)
health = st.sampled_from(["diabetes", "asthma", "chemotherapy", "sick leave"])
financial = st.sampled_from(["salary", "overdraft", "credit score", "payslips"])
name_part = st.text(alphabet="abcdefghijklmnoprstuvyzéöüåñç", min_size=3, max_size=8).map(str.capitalize)

# What surrounds a value: punctuation on both sides, then a filler word. No "." or "-" in front, where a
# dotted or hyphenated neighbour rightly makes a number part of something longer.
before = st.sampled_from(["", "(", '"', "'", ",", ";", ":", "!", "?", "[", "«"])
after = st.sampled_from(["", ")", '"', "'", ",", ".", ";", ":", "!", "?", "]", "»", "...", ").", "',"])
filler = st.sampled_from(["about", "with", "and", "regarding", "for", "then", "so", "re", "cc", "from"])


@st.composite
def people(draw: Any) -> list[str]:
    """Names that overlap: a full name, its first name alone, and a longer name sharing its last name."""
    first, last, other = draw(st.lists(name_part, min_size=3, max_size=3, unique_by=str.casefold))
    names = [f"{first} {last}"]
    if draw(st.booleans()):
        names.append(first)  # "Ada" and "Ada Lovelace"
    if draw(st.booleans()):
        names.append(f"{other} {last}")  # "Ada Lovelace" and "Byron Lovelace"
    if draw(st.booleans()):
        names.append(f"{first} {last} {other}")  # "Ada Lovelace Byron" contains "Ada Lovelace"
    return names


@st.composite
def texts_of_every_class(draw: Any) -> tuple[str, list[str], list[str]]:
    names = draw(people())
    pools: dict[str, st.SearchStrategy[str]] = {
        dc.PERSON: st.sampled_from(names).flatmap(lambda n: st.sampled_from([n, n.upper()])),
        dc.EMAIL: emails,
        dc.PHONE: phones,
        dc.POSTAL_ADDRESS: streets,
        dc.NATIONAL_ID: ssns,
        dc.PAYMENT_CARD: cards,
        dc.BANK_ACCOUNT: ibans,
        dc.IP_ADDRESS: ips,
        dc.CREDENTIAL: secrets,
        dc.DATE_OF_BIRTH: births,
        dc.HEALTH: health,
        dc.FINANCIAL: financial,
        dc.CUSTOMER_FIELD: st.just(PROJECT),
        dc.ACCOUNT_NUMBER: st.sampled_from(ACCOUNTS),
        dc.DATE: dates,
    }
    chosen = draw(st.lists(st.sampled_from(dc.DATA_CLASSES), min_size=1, max_size=8))
    pieces, values = [draw(filler)], []
    for data_class in chosen:
        value = draw(pools[data_class])
        shown = f"born {value}" if data_class == dc.DATE_OF_BIRTH else value  # a date is a birth date by context
        pieces.append(f" {draw(before)}{shown}{draw(after)} {draw(filler)}")
        values.append(value)
    return "".join(pieces), values, names


def _loaders(names: list[str]) -> Iterator[known_entities.KnownEntity]:
    yield from (known_entities.KnownEntity(name, dc.PERSON) for name in names)
    yield known_entities.KnownEntity(PROJECT, dc.CUSTOMER_FIELD)
    yield from (known_entities.KnownEntity(account, dc.ACCOUNT_NUMBER) for account in ACCOUNTS)


def _gate(user: Any, text: str, names: list[str]) -> GatedPrompt:
    known_entities.register_source("property-every-class", lambda: list(_loaders(names)))
    try:
        return egress_gate(
            user=user,
            conversation_key="property-every-class",
            destinations=[CLOUD],
            parts=[PromptPart("question", text)],
            policy_document=EVERYTHING_PSEUDONYMIZED,
            persist_vault=False,
        )
    finally:
        known_entities._sources.pop("property-every-class", None)
        known_entities.invalidate()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sample=texts_of_every_class())
def test_every_class_is_pseudonymized_and_restored_whatever_its_neighbours(
    sam: Any, sample: tuple[str, list[str], list[str]]
) -> None:
    text, values, names = sample
    gated = _gate(sam, text, names)

    sent = gated.messages[0]["content"]
    for value in values:
        assert value not in sent, (value, sent)
    manifest = json.dumps(gated.manifest, ensure_ascii=False)
    for value in [*values, *names]:
        assert value not in manifest
    restorer = gated.restorer()
    assert restorer.feed(sent) + restorer.finish() == text
    # and piece by piece, as a stream arrives
    restorer = gated.restorer()
    assert "".join(restorer.feed(sent[i : i + 3]) for i in range(0, len(sent), 3)) + restorer.finish() == text


# One fixed sentence per class, so a class that stops being found fails by name, not by chance.
EXAMPLES = {
    dc.PERSON: ("Ask (Ada Lovelace).", "Ada Lovelace"),
    dc.EMAIL: ("Mail «ada@example.org».", "ada@example.org"),
    dc.PHONE: ("Call +44 20 7946 0958!", "+44 20 7946 0958"),
    dc.POSTAL_ADDRESS: ("Ship to 12 Baker Street, please.", "12 Baker Street"),
    dc.NATIONAL_ID: ("SSN: 123-45-6789.", "123-45-6789"),
    dc.PAYMENT_CARD: ("Card (4111 1111 1111 1111)?", "4111 1111 1111 1111"),
    dc.BANK_ACCOUNT: ("IBAN DE89370400440532013000;", "DE89370400440532013000"),
    dc.IP_ADDRESS: ("From 10.0.0.1.", "10.0.0.1"),
    dc.CREDENTIAL: ('Key "sk-proj-abcdefghijklmnopqrstuvwx".', "sk-proj-abcdefghijklmnopqrstuvwx"),
    dc.DATE_OF_BIRTH: ("She was born 12 March 1980, in Leeds.", "12 March 1980"),
    dc.HEALTH: ("Off with diabetes?", "diabetes"),
    dc.FINANCIAL: ("Her salary: high.", "salary"),
    dc.CUSTOMER_FIELD: (f"Re: {PROJECT}!", PROJECT),
    dc.ACCOUNT_NUMBER: ("| Account | ACC-0048151623 |", "ACC-0048151623"),
    dc.DATE: ("Meet on 3 March 2026.", "3 March 2026"),
}


def test_the_examples_cover_every_data_class() -> None:
    assert set(EXAMPLES) == set(dc.DATA_CLASSES)


@pytest.mark.parametrize("data_class", sorted(EXAMPLES))
def test_each_class_gets_its_own_placeholder_next_to_punctuation(sam: Any, data_class: str) -> None:
    text, value = EXAMPLES[data_class]
    gated = _gate(sam, text, ["Ada Lovelace"])

    assert gated.messages[0]["content"] == text.replace(value, f"<{data_class}_1>")
    assert gated.manifest["pseudonymized"] == {data_class: 1}
    restorer = gated.restorer()
    assert restorer.feed(gated.messages[0]["content"]) + restorer.finish() == text


def test_overlapping_names_take_the_longest_and_the_rest_stays(sam: Any) -> None:
    names = ["Ada", "Ada Lovelace", "Byron Lovelace", "Ada Lovelace Byron"]
    text = "Ada, Ada Lovelace, Ada Lovelace Byron and Byron Lovelace (Lovelace)."
    gated = _gate(sam, text, names)

    sent = gated.messages[0]["content"]
    # the surname alone is masked too: the people it belongs to are named in full in the same prompt
    assert sent == "<PERSON_1>, <PERSON_2>, <PERSON_3> and <PERSON_4> (<PERSON_5>)."
    restorer = gated.restorer()
    assert restorer.feed(sent) + restorer.finish() == text
