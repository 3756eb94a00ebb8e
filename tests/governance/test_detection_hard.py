"""Detection on the hard spellings of issue 15: invisible characters, names written differently from the
record, name parts in context, addresses in parts, non-IBAN account numbers, national phone shapes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governance import classes as dc
from governance.detection import detect, detect_parts, pattern_findings, prepare, resolve_overlaps, to_original
from governance.known_entities import KnownEntity, KnownEntityIndex, address_parts, person_variants

FORMAT_CHARACTERS = ["\u200b", "\u200c", "\u200d", "\u00ad", "\ufeff", "\u200e", "\u200f", "\u2060", "\u202a"]


def hits(index: KnownEntityIndex, text: str, context: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    return [(f.data_class, text[f.start : f.end]) for f in resolve_overlaps(index.find(text, context=context))]


def pattern_hits(text: str) -> list[tuple[str, str]]:
    return [(f.data_class, text[f.start : f.end]) for f in resolve_overlaps(pattern_findings(text))]


# ---- normalisation --------------------------------------------------------------------------------------
@pytest.mark.parametrize("invisible", FORMAT_CHARACTERS)
def test_a_name_with_a_format_character_inside_still_matches_its_record(invisible: str) -> None:
    index = KnownEntityIndex([KnownEntity("Amara Okafor", dc.PERSON)])
    text = f"Ask Ama{invisible}ra Oka{invisible}for today."
    assert hits(index, text) == [(dc.PERSON, f"Ama{invisible}ra Oka{invisible}for")]


def test_prepared_text_maps_back_onto_the_original() -> None:
    text = "Ｃａｌｌ ０６\u2011１０４４\u200b６９０４ now"
    prepared, offsets = prepare(text)
    assert prepared == "Call 06-10446904 now"
    start = prepared.index("06")
    assert text[slice(*to_original(start, start + len("06-10446904"), offsets))] == "０６\u2011１０４４\u200b６９０４"
    assert pattern_hits(text) == [(dc.PHONE, "０６\u2011１０４４\u200b６９０４")]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Call me (+44 20 7946 0958) today", "+44 20 7946 0958"),
        ("Call me [+44 20 7946 0958] today", "+44 20 7946 0958"),
        ("Phone (020) 7946 0958.", "(020) 7946 0958"),
        ("Card: (4111 1111 1111 1111)", "4111 1111 1111 1111"),
        ("Mail (ada@example.org).", "ada@example.org"),
    ],
)
def test_brackets_next_to_a_value_stay_outside_it(text: str, value: str) -> None:
    assert [v for _, v in pattern_hits(text)] == [value]


# Values of several classes, placed between neighbours of every kind, with invisible characters inside some.
names = st.sampled_from(["Amara Okafor", "Jonas Verbeke", "Lucía Fernández"])
phones = st.sampled_from(["+44 20 7946 0958", "+31 6 10446904", "06-10446904", "+1 212 555 0175"])
accounts = st.sampled_from(["ACC-0048151623", "ACC-7730-0421"])
emails = st.sampled_from(["amara@okafor.example", "j.verbeke@example.be"])
values = st.one_of(names, phones, accounts, emails)
# No "." right in front: a dotted neighbour rightly makes a number part of something longer ("3.0612...").
before = st.sampled_from(["", "(", "[", '"', "'", ",", ";", ":", "!", "?", "«", "*", "|", "<"])
after = st.sampled_from(["", ")", "]", '"', "'", ",", ".", ";", ":", "!", "?", "»", "*", "|", ">", ").", "..."])
fillers = st.sampled_from(["about", "and", "re", "see", "from", "with"])
INDEX = KnownEntityIndex(
    [
        KnownEntity("Amara Okafor", dc.PERSON),
        KnownEntity("Jonas Verbeke", dc.PERSON),
        KnownEntity("Lucía Fernández", dc.PERSON),
        KnownEntity("ACC-0048151623", dc.ACCOUNT_NUMBER),
        KnownEntity("ACC-7730-0421", dc.ACCOUNT_NUMBER),
        KnownEntity("amara@okafor.example", dc.EMAIL),
        KnownEntity("j.verbeke@example.be", dc.EMAIL),
    ]
)


@st.composite
def texts_with_values(draw: Any) -> tuple[str, list[tuple[int, int]]]:
    pieces: list[str] = [draw(fillers)]
    spans: list[tuple[int, int]] = []
    for _ in range(draw(st.integers(1, 5))):
        value = draw(values)
        if draw(st.booleans()):
            cut = draw(st.integers(1, len(value) - 1))
            if value[cut - 1].isalnum() and value[cut].isalnum():
                value = value[:cut] + draw(st.sampled_from(FORMAT_CHARACTERS)) + value[cut:]
        pieces.append(" " + draw(before))
        start = len("".join(pieces))
        pieces.append(value)
        spans.append((start, start + len(value)))
        pieces.append(draw(after) + " " + draw(fillers))
    return "".join(pieces), spans


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sample=texts_with_values())
def test_each_value_is_found_exactly_and_nothing_around_it_is(sample: tuple[str, list[tuple[int, int]]]) -> None:
    """Every placed value is one finding with exactly its span: the neighbouring brackets and punctuation,
    and all text between values, stay outside every finding (so they are sent byte for byte)."""
    text, spans = sample
    findings = resolve_overlaps([*pattern_findings(text), *INDEX.find(text)])
    found = {(f.start, f.end) for f in findings}
    assert set(spans) <= found, (text, [(text[s:e]) for s, e in found])
    covered = set().union(*(range(f.start, f.end) for f in findings)) if findings else set()
    inside = set().union(*(range(s, e) for s, e in spans))
    assert covered <= inside, [text[f.start : f.end] for f in findings]


# ---- names as people write them --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("record", "written"),
    [
        ("Okafor, Amara", "Amara Okafor"),
        ("Amara Okafor", "Okafor, Amara"),
        ("Amara Okafor", "Okafor Amara"),
        ("Amara N. Okafor", "Amara Okafor"),
        ("Amara Nkem Okafor", "Amara N. Okafor"),
        ("Amara Nkem Okafor", "Amara Nkem Okafor"),
        ("John Q. Public Jr.", "John Public"),
        ("John Q. Public Jr.", "John Public Jr."),
        ("John Public III", "John Public III"),
        ("Femke van der Berg", "Femke Berg"),
        ("Femke van der Berg", "Femke van der Berg"),
        ("Femke van der Berg", "van der Berg, Femke"),
        ("Luís da Silva", "Luís Silva"),
        ("Ursula von Leyen", "Ursula Leyen"),
        ("Marguerite Okonkwo-Lind", "Marguerite Okonkwo Lind"),
        ("Marguerite Okonkwo-Lind", "M. Okonkwo-Lind"),
        ("Jean-Luc Picard", "Jean Luc Picard"),
    ],
)
def test_a_person_is_found_in_the_usual_spellings_of_their_name(record: str, written: str) -> None:
    index = KnownEntityIndex([KnownEntity(record, dc.PERSON, key="customer:1")])
    text = f"Please call {written} back."
    assert hits(index, text) == [(dc.PERSON, written)]


@pytest.mark.parametrize(
    "title",
    ["Mr", "Mr.", "Mrs.", "Ms", "Dr.", "Prof.", "Herr", "Frau", "Mme", "M.", "Sr.", "Sra.", "Dhr.", "Mevr.", "Signora"],
)
def test_the_surname_alone_after_a_title_is_found_without_context(title: str) -> None:
    index = KnownEntityIndex([KnownEntity("Femke van der Berg", dc.PERSON), KnownEntity("Amara Okafor", dc.PERSON)])
    text = f"Then {title} Okafor and {title} van der Berg wrote."
    assert hits(index, text) == [(dc.PERSON, "Okafor"), (dc.PERSON, "van der Berg")]


def test_a_given_name_alone_counts_only_where_its_person_is_in_context() -> None:
    index = KnownEntityIndex([KnownEntity("Amara Okafor", dc.PERSON, key="customer:7")])
    text = "Amara said yes."
    assert hits(index, text) == []
    assert hits(index, text, context=("customer:7",)) == [(dc.PERSON, "Amara")]
    assert hits(index, text, context=("customer:8",)) == []
    # named in full in another part of the same prompt: in context for every part
    first, second = index.find_many(["About Amara Okafor's order.", "Amara said yes."])
    assert [(f.start, f.end) for f in second] == [(0, 5)]


def test_a_name_that_is_an_everyday_word_needs_capitals_or_context() -> None:
    index = KnownEntityIndex([KnownEntity("Will Rose", dc.PERSON, key="customer:3")])
    assert hits(index, "prices will rose again") == []
    assert hits(index, "Will Rose called") == [(dc.PERSON, "Will Rose")]
    assert hits(index, "we will see", context=("customer:3",)) == []  # lower case everyday word
    assert hits(index, "ask Will later", context=("customer:3",)) == [(dc.PERSON, "Will")]


def test_person_variants_cover_suffixes_particles_and_initials() -> None:
    full, givens, families = person_variants("Maria de la Cruz Jr.")
    assert {"maria de la cruz", "maria cruz", "de la cruz maria", "m. de la cruz", "maria de la cruz jr."} <= full
    assert givens == {"maria"} and families == {"de la cruz", "cruz"}


# ---- addresses ----------------------------------------------------------------------------------------
def test_an_address_is_found_whole_and_in_parts_with_any_spacing_and_punctuation() -> None:
    assert {"Dok Noord 12", "9000 Ghent", "Dok Noord 12 9000 Ghent"} <= address_parts("Dok Noord 12 9000 Ghent")
    index = KnownEntityIndex([KnownEntity("Dok Noord 12\n9000 Ghent\nBelgium", dc.POSTAL_ADDRESS)])
    for written in ["Dok Noord 12, 9000 Ghent", "Dok  Noord 12 ;9000 Ghent", "dok noord 12", "9000 Ghent"]:
        assert hits(index, f"Ship it to {written} today") == [(dc.POSTAL_ADDRESS, written)]
    assert hits(index, "Ghent is lovely, Belgium too") == []


def test_overlaps_are_won_by_the_longest_span_whatever_its_class() -> None:
    index = KnownEntityIndex([KnownEntity("Noord Bakery", dc.CUSTOMER_FIELD), KnownEntity("Okafor", dc.PERSON)])
    text = "Deliver to 12 Noord Bakery Road, please."
    findings = resolve_overlaps([*pattern_findings(text), *index.find(text)])
    assert [(f.data_class, text[f.start : f.end]) for f in findings] == [(dc.POSTAL_ADDRESS, "12 Noord Bakery Road")]


def test_a_checksum_validated_value_wins_over_a_longer_guess() -> None:
    text = "SSN 123-45-6789 12 times"
    assert (dc.NATIONAL_ID, "123-45-6789") in pattern_hits(text)


# ---- account numbers, phones, licences, dates ----------------------------------------------------------------
def test_account_numbers_match_with_any_grouping_of_their_digits() -> None:
    index = KnownEntityIndex([KnownEntity("ACC-00481516", dc.ACCOUNT_NUMBER), KnownEntity("+31 6 10446904", dc.PHONE)])
    text = "| ACC-00481516 | ACC 0048 1516 | acc00481516 | +31610446904 | 0031 6 1044 6904 | ACC-004815169 |"
    assert hits(index, text) == [
        (dc.ACCOUNT_NUMBER, "ACC-00481516"),
        (dc.ACCOUNT_NUMBER, "ACC 0048 1516"),
        (dc.ACCOUNT_NUMBER, "acc00481516"),
        (dc.PHONE, "+31610446904"),
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Bel me op 06-10446904 morgen", "06-10446904"),
        ("Her phone: 61 51 81.", "61 51 81"),
        ("tel. 4711-22 (ext)", "4711-22"),
        ("Mobile 0470 12 34 56", "0470 12 34 56"),
    ],
)
def test_national_phone_shapes_are_phones(text: str, value: str) -> None:
    assert (dc.PHONE, value) in pattern_hits(text)


def test_a_short_number_without_a_phone_word_is_not_a_phone() -> None:
    assert pattern_hits("We shipped 61 51 81 units") == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("My driver's license number is U62928788557186", "U62928788557186"),
        ("driver's licence no. 2270-66-1551, thanks", "2270-66-1551"),
        ("DL# F1628235 on file", "F1628235"),
    ],
)
def test_driver_licences_are_found_where_the_words_say_so(text: str, value: str) -> None:
    assert (dc.NATIONAL_ID, value) in pattern_hits(text)


def test_a_licence_shape_without_the_words_is_nothing() -> None:
    assert pattern_hits("Order F1628235 shipped") == []


@pytest.mark.django_db
def test_detect_parts_gives_each_part_its_findings() -> None:
    results = detect_parts(["Mail ada@example.org", "", "Meet on 3 March 2026"])
    assert [[f.data_class for f in part] for part in results] == [[dc.EMAIL], [], [dc.DATE]]
    assert detect("Meet on 3 March 2026") == results[2]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("He lives on the north side of Rua Diadema 1903.", "Rua Diadema 1903"),
        ("Send it to Via Roma 131, Montafia", "Via Roma 131"),
        ("Billing: ul. Słowicza 10 Apt. 360", "ul. Słowicza 10"),
        ("Billing: ul. Słowicza 10 Apt. 360", "Apt. 360"),
        ("Kevin had his address: 5049 Harjukuja 54, SEINÄJOKI", "Harjukuja 54"),
        ("Deliver to Keizersgracht 221 tomorrow", "Keizersgracht 221"),
        ("Write to PO Box 1234 instead", "PO Box 1234"),
        ("PSC 4574, Box 8393\nAPO AA 81998", "PSC 4574, Box 8393\nAPO AA 81998"),
        ("The shop manager at Dok Noord 12 9000 Ghent said", "Dok Noord 12 9000 Ghent"),
        ("Hoge Wei 32, 1234 AB Utrecht", "Hoge Wei 32, 1234 AB Utrecht"),
    ],
)
def test_street_shapes_of_other_languages_and_units_are_addresses(text: str, value: str) -> None:
    assert any(v == value or value in v for c, v in pattern_hits(text) if c == dc.POSTAL_ADDRESS), pattern_hits(text)


@pytest.mark.parametrize(
    "text",
    [
        "Via email 24 hours a day",
        "Spring 2024 enrolment",
        "Table 3 shows the plan",
        "Place 2 orders",
        "Committee 12",
        "Page 3 2024 Benefits Guide",
        "See Table 4 2023 Results",
    ],
)
def test_capitalised_words_with_numbers_are_not_addresses(text: str) -> None:
    assert [c for c, _ in pattern_hits(text) if c == dc.POSTAL_ADDRESS] == []
