from __future__ import annotations

import pytest

from governance import classes as dc
from governance.detection import LAYER_KNOWN, LAYER_PATTERNS, detect, ner_status, pattern_findings, resolve_overlaps
from governance.known_entities import KnownEntity, KnownEntityIndex, normalise


def found(text: str) -> list[tuple[str, str]]:
    return [(f.data_class, text[f.start : f.end]) for f in resolve_overlaps(pattern_findings(text))]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mail me at jane.doe+work@example.co.uk today.", (dc.EMAIL, "jane.doe+work@example.co.uk")),
        ("Card 4111 1111 1111 1111 expires soon", (dc.PAYMENT_CARD, "4111 1111 1111 1111")),
        ("Card 4454794511390933.", (dc.PAYMENT_CARD, "4454794511390933")),
        ("IBAN: DE89 3704 0044 0532 0130 00 please", (dc.BANK_ACCOUNT, "DE89 3704 0044 0532 0130 00")),
        ("iban gb42nawi04454264788619", (dc.BANK_ACCOUNT, "gb42nawi04454264788619")),
        ("SSN 460-89-9847 on file", (dc.NATIONAL_ID, "460-89-9847")),
        ("Codice fiscale RSSMRA85T10A562S", (dc.NATIONAL_ID, "RSSMRA85T10A562S")),
        ("Call +41 (0)96 471 07 95 now", (dc.PHONE, "+41 (0)96 471 07 95")),
        ("Call 0490 75 40 81", (dc.PHONE, "0490 75 40 81")),
        ("Fax: 345-899-3560x4587", (dc.PHONE, "345-899-3560x4587")),
        ("server 192.168.10.4 is down", (dc.IP_ADDRESS, "192.168.10.4")),
        ("v6 6e40:4041:c617:e898:c11:40d2:c669:2eb4 ok", (dc.IP_ADDRESS, "6e40:4041:c617:e898:c11:40d2:c669:2eb4")),
        ("key sk-proj-abcdefghijklmnopqrstuvwxyz012345", (dc.CREDENTIAL, "sk-proj-abcdefghijklmnopqrstuvwxyz012345")),
        ("aws AKIAIOSFODNN7EXAMPLE here", (dc.CREDENTIAL, "AKIAIOSFODNN7EXAMPLE")),
        ("token ghp_" + "a1" * 18 + " leaked", (dc.CREDENTIAL, "ghp_" + "a1" * 18)),
        ("password: hunter2hunter", (dc.CREDENTIAL, "hunter2hunter")),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U x",
            (
                dc.CREDENTIAL,
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            ),
        ),
        ("She was born on 12 March 1980 in Lyon", (dc.DATE_OF_BIRTH, "12 March 1980")),
        ("He lives at 221 Baker Street, London", (dc.POSTAL_ADDRESS, "221 Baker Street")),
        ("She was diagnosed with diabetes", (dc.HEALTH, "diagnosed with")),
    ],
)
def test_validated_patterns_find_tricky_values(text: str, expected: tuple[str, str]) -> None:
    assert expected in found(text)


@pytest.mark.parametrize(
    "text",
    [
        "Order 4111 1111 1111 1112 is not a card (bad Luhn)",
        "IBAN DE89 3704 0044 0532 0130 01 has a wrong checksum",
        "Version 1.2.3.4.5 and 999.1.1.1 are no addresses",
        "We sold 1500 units in 2023",
        "Revenue grew over 2019-2023 and 1998 - 2001.",
    ],
)
def test_invalid_or_harmless_values_are_not_reported(text: str) -> None:
    assert found(text) == []


def test_a_date_in_prose_is_a_date_and_a_birth_date_stays_its_own_class() -> None:
    assert found("Meeting on 2024-03-05 at 10:30") == [(dc.DATE, "2024-03-05 at 10:30")]
    assert found("She was born on 7/30/1964. Then") == [(dc.DATE_OF_BIRTH, "7/30/1964")]
    assert found("Date of birth. It's 9/25/1945") == [(dc.DATE_OF_BIRTH, "9/25/1945")]


def test_a_never_issued_ssn_is_not_a_national_id() -> None:
    assert dc.NATIONAL_ID not in {data_class for data_class, _ in found("SSN 000-12-3456 is never issued")}


def test_a_card_is_a_card_even_if_it_also_looks_like_a_phone() -> None:
    assert found("pay with 4111111111111111") == [(dc.PAYMENT_CARD, "4111111111111111")]


def test_known_entities_match_case_and_accent_insensitively_on_word_boundaries() -> None:
    index = KnownEntityIndex([KnownEntity("Élodie Durand", dc.PERSON), KnownEntity("Ann", dc.PERSON)])
    text = "ELODIE  DURAND wrote; élodie durand again. Annual report by Ann."
    hits = [(f.data_class, text[f.start : f.end]) for f in index.find(text)]
    assert hits == [(dc.PERSON, "ELODIE  DURAND"), (dc.PERSON, "élodie durand"), (dc.PERSON, "Ann")]


def test_normalisation_keeps_a_map_back_to_the_original_offsets() -> None:
    folded, offsets = normalise("Ǆemal Ström")
    assert folded.startswith("dzemal strom")
    assert offsets is not None and offsets[folded.index("strom")] == "Ǆemal Ström".index("Ström")


@pytest.mark.django_db
def test_layers_can_be_run_alone(settings: object) -> None:
    from governance.known_entities import invalidate, register_source

    register_source("test-layer", lambda: [KnownEntity("Zorander Quill", dc.PERSON)])
    invalidate()
    try:
        text = "Zorander Quill mailed zq@example.com"
        assert {f.layer for f in detect(text, layers=[LAYER_PATTERNS])} == {LAYER_PATTERNS}
        assert [(f.layer, f.data_class) for f in detect(text, layers=[LAYER_KNOWN])] == [(LAYER_KNOWN, dc.PERSON)]
        assert len(detect(text)) == 2
    finally:
        from governance import known_entities

        known_entities._sources.pop("test-layer", None)
        invalidate()


def test_the_ner_layer_reports_itself_absent_when_no_backend_is_configured() -> None:
    assert ner_status().startswith("absent")


def test_a_configured_ner_backend_is_used(settings: object) -> None:
    from governance import detection

    settings.GOVERNANCE_NER_BACKEND = "tests.governance.test_detection.fake_ner"  # type: ignore[attr-defined]
    detection._ner_cache.clear()
    try:
        findings = detection.ner_findings("Hello Bob")
        assert [(f.layer, f.data_class, f.start, f.end) for f in findings] == [("ner", dc.PERSON, 6, 9)]
        assert ner_status().startswith("present")
    finally:
        detection._ner_cache.clear()


def fake_ner(text: str) -> list[tuple[int, int, str]]:
    return [(text.index("Bob"), text.index("Bob") + 3, dc.PERSON)] if "Bob" in text else []
