"""The gate with the default policy of a new install and real customer records: none of a customer's values
leaves in clear, in any of the spellings issue 15 found leaking."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from governance import classes as dc
from governance import known_entities
from governance.gate import GatedPrompt, PromptPart, egress_gate
from governance.policy import default_role_rules
from portal.customers.entities import customer_entity_values
from tests.customers.factories import CustomerFactory
from tests.governance.conftest import CLOUD

pytestmark = pytest.mark.django_db


@pytest.fixture
def amara() -> Iterator[Any]:
    customer = CustomerFactory.create(
        name="Okafor, Amara N.",
        organisation="Noord Bakery",
        emails=["amara@okafor.example"],
        phones=["+31 6 10446904"],
        postal_address="Dok Noord 12\n9000 Ghent\nBelgium",
        account_numbers=["ACC-0048151623"],
    )
    known_entities.invalidate()
    yield customer
    known_entities.invalidate()


def _ask(user: Any, *parts: PromptPart, key: str = "hard-1") -> GatedPrompt:
    return egress_gate(user=user, conversation_key=key, destinations=[CLOUD], parts=list(parts))


def _sent(gated: GatedPrompt) -> str:
    return "\n".join(message["content"] for message in gated.messages)


LEAKS = [
    "Amara Okafor",
    "Okafor",
    "Amara",
    "ACC-0048151623",
    "0048151623",
    "10446904",
    "Dok Noord 12",
    "9000 Ghent",
    "amara@okafor.example",
    "Noord Bakery",
]


@pytest.mark.parametrize(
    "question",
    [
        "What is the status for Amara Okafor?",
        "Draft a letter to Mrs. Okafor about the refund.",
        "Write to Ama\u200bra Oka\u00adfor at Dok Noord 12, 9000 Ghent.",
        "| customer | account |\n|---|---|\n| A. Okafor | ACC-0048151623 |",
        "Her account ACC 0048 1516 23 and phone 06-10446904 (mobile).",
        "Thanks, Amara! Mail amara@okafor.example or call +31 6 1044 6904.",
        "Deliver to Noord Bakery, Dok Noord 12 9000 Ghent.",
    ],
)
def test_no_customer_value_leaves_in_any_spelling(sam: Any, amara: Any, question: str) -> None:
    gated = _ask(sam, PromptPart("question", question))
    sent = _sent(gated)
    for value in LEAKS:
        assert value.lower() not in sent.lower(), (value, sent)
    restorer = gated.restorer()
    assert restorer.feed(sent) + restorer.finish() == question


def test_the_given_name_alone_is_masked_in_a_conversation_about_that_customer(sam: Any, amara: Any) -> None:
    question = PromptPart("question", "Can you thank Amara for the order?")
    about_her = PromptPart("customer", "Customer tier: standard", source={"customer_id": amara.pk, "field": "tier"})
    gated = _ask(sam, about_her, question)
    assert "Amara" not in _sent(gated)
    # without her record in the prompt, a bare given name is not hers
    gated = _ask(sam, PromptPart("question", "Can you thank Amara for the order?"), key="hard-2")
    assert "Amara" in _sent(gated)


def test_a_name_in_the_history_puts_that_person_in_context(sam: Any, amara: Any) -> None:
    history = PromptPart("history", "Tell me about Amara Okafor.", role="user")
    gated = _ask(sam, history, PromptPart("question", "And did Amara pay?"))
    assert "Amara" not in _sent(gated)
    assert gated.manifest["pseudonymized"].get(dc.PERSON, 0) >= 2


def test_account_numbers_are_their_own_class_and_pseudonymized_by_default(sam: Any, amara: Any) -> None:
    gated = _ask(sam, PromptPart("question", "| id | ACC-0048151623 |"))
    assert gated.manifest["findings"] == {dc.ACCOUNT_NUMBER: 1}
    assert gated.manifest["pseudonymized"] == {dc.ACCOUNT_NUMBER: 1}
    assert "<ACCOUNT_NUMBER_1>" in _sent(gated)


def test_every_value_copied_from_a_customer_record_is_at_least_pseudonymized_by_default(amara: Any) -> None:
    rules = default_role_rules()["classes"]
    classes = {data_class for _, data_class, _ in customer_entity_values()}
    assert classes >= {dc.PERSON, dc.CUSTOMER_FIELD, dc.EMAIL, dc.PHONE, dc.POSTAL_ADDRESS, dc.ACCOUNT_NUMBER}
    for data_class in classes:
        assert rules[data_class] in (dc.PSEUDONYMIZE, dc.REDACT, dc.BLOCK), data_class


def test_a_phone_in_brackets_keeps_both_brackets(sam: Any) -> None:
    gated = _ask(sam, PromptPart("question", "Call (+44 20 7946 0958) today"))
    assert _sent(gated) == "Call (<PHONE_1>) today"


@pytest.mark.parametrize(
    ("record_phone", "written"),
    [
        ("+1 201-524-7430", "24 74 30"),  # US: the last digits alone
        ("+44 7400 499347", "49 93 47"),  # GB mobile: the subscriber part
        ("+33 1 23 50 61 54", "50 61 54"),  # FR
        ("+32 9 261 51 81", "261 51 81"),  # BE: without the town's code
        ("+49 151 23525155", "0151/23525155"),  # DE: the national shape with a slash
        ("+31 6 10446904", "06-10446904"),  # NL: the national shape
    ],
)
def test_a_customer_phone_in_a_national_or_local_shape_never_leaves(sam: Any, record_phone: str, written: str) -> None:
    CustomerFactory.create(name="Jorunn Vasquez", phones=[record_phone])
    known_entities.invalidate()
    gated = _ask(sam, PromptPart("question", f"The customer left a voicemail from {written}; what do I say?"))
    digits = "".join(ch for ch in written if ch.isdigit())
    sent_digits = "".join(ch for ch in _sent(gated) if ch.isdigit())
    assert digits.lstrip("0") not in sent_digits, _sent(gated)
    known_entities.invalidate()


@pytest.mark.parametrize("written", ["0151/23525155", "089 / 12 34 56"])
def test_an_unknown_national_number_with_a_slash_is_a_phone(written: str) -> None:
    from governance.detection import pattern_findings

    text = f"Rückruf unter {written} bitte"
    assert [(text[f.start : f.end], f.data_class) for f in pattern_findings(text)] == [(written, dc.PHONE)]


@pytest.mark.parametrize("text", ["the 2023/2024 season", "half (1/2) of it", "on 12/05/2024"])
def test_years_fractions_and_dates_with_a_slash_are_not_phones(text: str) -> None:
    from governance.detection import pattern_findings

    assert dc.PHONE not in {finding.data_class for finding in pattern_findings(text)}


def test_a_texts_pattern_findings_are_kept_per_phone_regions(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Passages and instructions come back at every question: scanned once, then served from what was kept;
    the phone regions are part of what decides, so changing them scans again."""
    from governance import detection

    scans: list[str] = []
    real = detection._pattern_findings

    def counting(text: str) -> list[Any]:
        scans.append(text)
        return real(text)

    monkeypatch.setattr(detection, "_pattern_findings", counting)
    text = f"Call the Munich office on 089 / 12 34 56 ({id(scans)}) or mail ops@example.org."
    settings.GOVERNANCE_PHONE_REGIONS = ("GB",)
    first = detection.pattern_findings(text)
    again = detection.pattern_findings(text)
    assert again == first and again is not first and len(scans) == 1
    again.clear()  # a caller changing its list does not change what is kept
    assert detection.pattern_findings(text) == first
    settings.GOVERNANCE_PHONE_REGIONS = ("DE",)
    german = detection.pattern_findings(text)
    assert len(scans) == 2 and dc.EMAIL in {finding.data_class for finding in german}
    long_text = "x " * (detection.PATTERN_CACHE_MAX_CHARS // 2 + 1)
    detection.pattern_findings(long_text)
    detection.pattern_findings(long_text)
    assert len(scans) == 4  # too long to keep: scanned each time
