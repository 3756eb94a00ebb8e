"""The fifth policy action, `abstract`, and profiles marked sensitive: generalisations instead of values."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from governance import abstraction
from governance import classes as dc
from governance.gate import PromptPart, egress_gate
from governance.policy import effective_policy, normalise_document
from tests.accounts.factories import UserFactory
from tests.customers.factories import CustomerFactory
from tests.governance.conftest import CLOUD
from tests.governance.factories import policy_with

TODAY = date(2026, 3, 1)


# ---- the generalisations ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("written", "band"),
    [
        ("1984-03-12", "aged 40-49"),
        ("12/03/1984", "aged 40-49"),
        ("12 March 1984", "aged 40-49"),
        ("March 12, 1984", "aged 40-49"),
        ("03/25/1990", "aged 30-39"),  # month first: only a day above 12 says so
        ("1984-03-02", "aged 40-49"),
        ("1986-03-02", "aged 30-39"),  # 40 tomorrow, 39 today
        ("2 mars 1970", "aged 50-59"),
        ("2021-06-01", "aged under 10"),
    ],
)
def test_a_date_of_birth_becomes_an_age_band(written: str, band: str) -> None:
    assert abstraction.age_band(written, TODAY) == band
    assert abstraction.abstract(dc.DATE_OF_BIRTH, f"born {written}"[5:], today=TODAY) == f"<{band}>"


def test_an_unreadable_or_future_date_of_birth_falls_back_to_a_description() -> None:
    assert abstraction.abstract(dc.DATE_OF_BIRTH, "31/31/31", today=TODAY) == "<a date of birth>"
    assert abstraction.abstract(dc.DATE_OF_BIRTH, "2030-01-01", today=TODAY) == "<a date of birth>"


@pytest.mark.parametrize(
    ("address", "place"),
    [
        ("Dok Noord 12, 9000 Ghent, Belgium", "Ghent, Belgium"),
        ("Dok Noord 12\n9000 Ghent\nBelgium", "Ghent, Belgium"),
        ("12 Baker Street, London NW1 6XE", "London"),
        ("Acme Ltd\n12 Baker Street\nLondon NW1 6XE\nUnited Kingdom", "London, United Kingdom"),
        ("742 Evergreen Terrace, Springfield, IL 62704, USA", "Springfield, USA"),
        ("Hauptstraße 5, 10115 Berlin", "Berlin"),
    ],
)
def test_an_address_becomes_its_city_and_country(address: str, place: str) -> None:
    assert abstraction.city_and_country(address) == place
    assert abstraction.abstract(dc.POSTAL_ADDRESS, address) == f"<an address in {place}>"


def test_a_street_alone_says_only_that_it_is_an_address() -> None:
    assert abstraction.abstract(dc.POSTAL_ADDRESS, "12 Baker Street") == "<a postal address>"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("£45,250", "<an amount between £10,000 and £100,000>"),
        ("EUR 1.200,50", "<an amount between EUR 1,000 and EUR 10,000>"),
        ("$3.5m", "<an amount between $1,000,000 and $10,000,000>"),
        ("salary", "<financial information>"),
        ("ACC-00123456", "<an account number>"),
    ],
)
def test_an_amount_becomes_a_range_and_other_financial_values_a_description(value: str, expected: str) -> None:
    assert abstraction.abstract(dc.FINANCIAL, value) == expected


def test_every_class_has_a_sensible_fallback_even_one_added_later() -> None:
    assert abstraction.abstract(dc.EMAIL, "a@b.example") == "<an e-mail address>"
    assert abstraction.abstract(dc.PAYMENT_CARD, "4111 1111 1111 1111") == "<a Visa card number>"
    assert abstraction.abstract(dc.BANK_ACCOUNT, "BE71 0961 2345 6769") == "<a bank account in BE>"
    assert abstraction.abstract(dc.PHONE, "+44 20 7946 0958") == "<a phone number with country code +44>"
    assert abstraction.abstract(dc.PHONE, "020 7946 0958") == "<a phone number>"
    assert abstraction.abstract(dc.HEALTH, "diabetes") == "<health information>"
    assert abstraction.abstract("ACCOUNT_NUMBER", "ACC-1") == "<an account number>"
    assert abstraction.abstract("DATE", "12 May 2024") == "<a date in 2024>"
    assert abstraction.abstract("LICENCE_PLATE", "AB-12-CD") == "<a licence plate>"
    for data_class in dc.DATA_CLASSES:
        assert abstraction.abstract(data_class, "zzz").startswith("<")


@pytest.mark.django_db
def test_a_customer_is_described_by_their_tier_whatever_the_spelling() -> None:
    CustomerFactory.create(name="Okafor, Amara", tier="key", postal_address="Dok Noord 12\n9000 Ghent\nBelgium")
    CustomerFactory.create(name="Bram Peeters", tier="priority", organisation="Peeters Bakeries")

    assert abstraction.abstract(dc.PERSON, "Amara Okafor") == "<a key-account customer>"
    assert abstraction.abstract(dc.PERSON, "Mrs. Ok\u200bafor") == "<a key-account customer>"
    assert abstraction.abstract(dc.PERSON, "Bram Peeters") == "<a priority customer>"
    assert abstraction.abstract(dc.PERSON, "Nobody Known") == "<a person>"
    assert abstraction.abstract(dc.CUSTOMER_FIELD, "Peeters Bakeries") == "<the organisation of a priority customer>"
    assert abstraction.abstract(dc.POSTAL_ADDRESS, "Dok Noord 12") == "<an address in Ghent, Belgium>"


@pytest.mark.django_db
def test_a_colleague_is_described_by_their_role() -> None:
    UserFactory.create(username="priya", first_name="Priya", last_name="Raman", roles=["Staff"])

    assert abstraction.abstract(dc.PERSON, "Priya Raman") == "<a colleague (Staff)>"


# ---- the action in policies and the gate ------------------------------------------------------------------
def test_abstract_sits_between_pseudonymize_and_redact() -> None:
    assert dc.ACTIONS == (dc.ALLOW, dc.PSEUDONYMIZE, dc.ABSTRACT, dc.REDACT, dc.BLOCK)
    assert dc.most_restrictive([dc.PSEUDONYMIZE, dc.ABSTRACT]) == dc.ABSTRACT
    assert dc.most_restrictive([dc.ABSTRACT, dc.REDACT]) == dc.REDACT


def test_policies_accept_the_new_action_and_still_refuse_unknown_ones() -> None:
    document = normalise_document(policy_with({"Staff": {"classes": {dc.DATE_OF_BIRTH: dc.ABSTRACT}}}))
    assert document["roles"]["Staff"]["classes"][dc.DATE_OF_BIRTH] == dc.ABSTRACT
    with pytest.raises(ValidationError):
        normalise_document(policy_with({"Staff": {"classes": {dc.DATE_OF_BIRTH: "abstractify"}}}))


def test_a_floor_of_abstract_keeps_stricter_rules() -> None:
    policy = effective_policy(normalise_document(policy_with({})), ["Staff"])
    floored = policy.at_least(dc.ABSTRACT, dc.personal_classes())
    assert floored.classes[dc.PERSON] == dc.ABSTRACT  # pseudonymize -> abstract
    assert floored.classes[dc.HEALTH] == dc.ABSTRACT  # allow -> abstract
    assert floored.classes[dc.PAYMENT_CARD] == dc.BLOCK  # block stays
    assert floored.classes[dc.CREDENTIAL] == dc.BLOCK  # not personal, untouched
    assert policy.classes[dc.PERSON] == dc.PSEUDONYMIZE  # the original is unchanged


@pytest.mark.django_db
def test_the_gate_sends_abstractions_counts_them_and_does_not_restore_them(sam: Any) -> None:
    CustomerFactory.create(name="Amara Okafor", tier="key")
    document = policy_with({"Staff": {"classes": {dc.PERSON: dc.ABSTRACT, dc.DATE_OF_BIRTH: dc.ABSTRACT}}})
    text = "Amara Okafor, born 1984-03-12, asks about her pension."

    gated = egress_gate(user=sam, conversation_key="abs-1", destinations=[CLOUD],
                        parts=[PromptPart("question", text)], policy_document=document)  # fmt: skip

    sent = gated.messages[0]["content"]
    assert sent.startswith("<a key-account customer>, born <aged ") and sent.endswith(">, asks about her pension.")
    assert "Amara" not in sent and "1984" not in sent
    assert gated.manifest["abstracted"] == {dc.DATE_OF_BIRTH: 1, dc.PERSON: 1}
    assert gated.manifest["pseudonymized"] == {} and gated.manifest["placeholders"] == []
    assert gated.manifest["parts"][0]["abstracted"] == {dc.DATE_OF_BIRTH: 1, dc.PERSON: 1}
    assert gated.manifest["actions"] == {dc.DATE_OF_BIRTH: dc.ABSTRACT, dc.PERSON: dc.ABSTRACT}
    restorer = gated.restorer()
    assert restorer.feed(sent) + restorer.finish() == sent  # nothing to give back: no value was kept


@pytest.mark.django_db
def test_a_sensitive_caller_abstracts_every_personal_class_whatever_the_policy_allows(sam: Any) -> None:
    CustomerFactory.create(name="Amara Okafor", tier="priority")
    document = policy_with({"Staff": {"classes": {dc.PERSON: dc.ALLOW, dc.EMAIL: dc.REDACT}}})
    kwargs: dict[str, Any] = {"user": sam, "destinations": [CLOUD], "policy_document": document}
    parts = [PromptPart("question", "Amara Okafor (amara@okafor.example) has diabetes.")]

    normal = egress_gate(conversation_key="abs-2", parts=parts, **kwargs)
    sensitive = egress_gate(conversation_key="abs-3", parts=parts, sensitive=True, **kwargs)

    assert normal.messages[0]["content"] == "Amara Okafor ([EMAIL redacted]) has diabetes."
    assert sensitive.messages[0]["content"] == "<a priority customer> ([EMAIL redacted]) has <health information>."
    assert sensitive.manifest["sensitive"] is True and normal.manifest["sensitive"] is False
    assert sensitive.manifest["abstracted"] == {dc.HEALTH: 1, dc.PERSON: 1}
    assert sensitive.manifest["redacted"] == {dc.EMAIL: 1}  # stricter than abstract: stays
    assert sensitive.manifest["actions"][dc.PERSON] == dc.ABSTRACT


@pytest.mark.django_db
def test_a_sensitive_caller_still_stops_what_the_policy_blocks(sam: Any) -> None:
    from governance.gate import EgressBlocked

    with pytest.raises(EgressBlocked, match="PAYMENT_CARD"):
        egress_gate(user=sam, conversation_key="abs-4", destinations=[CLOUD], sensitive=True,
                    parts=[PromptPart("question", "Is card 4111 1111 1111 1111 valid?")])  # fmt: skip
