"""Customer values as known entities for governance's detector.

The loader yields every value of every customer record; governance builds its dictionary from it
lazily and rebuilds after `invalidate()`, which the customer services call after each commit that
changes or deletes a record.
"""

from __future__ import annotations

from collections.abc import Iterator

import phonenumbers
from django.conf import settings
from django.db import transaction
from stdnum import iban

from governance import known_entities
from governance.known_entities import KnownEntity

SOURCE_NAME = "customers"


def account_number_class(value: str) -> str:
    """An account number that is a valid IBAN is a bank account; any other is a customer account number
    (a class of its own, pseudonymized by default, never the allowed-by-default FINANCIAL)."""
    return "BANK_ACCOUNT" if iban.is_valid(value) else "ACCOUNT_NUMBER"


def phone_variants(value: str) -> list[str]:
    """The number as written and in international format, so either spelling is recognised."""
    variants = [value]
    try:
        parsed = phonenumbers.parse(value, settings.CUSTOMERS_DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException:
        return variants
    for number_format in (
        phonenumbers.PhoneNumberFormat.E164,
        phonenumbers.PhoneNumberFormat.INTERNATIONAL,
        phonenumbers.PhoneNumberFormat.NATIONAL,
    ):
        formatted = phonenumbers.format_number(parsed, number_format)
        if formatted not in variants:
            variants.append(formatted)
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if "00" + e164[1:] not in variants:
        variants.append("00" + e164[1:])  # the international prefix as dialled in Europe
    return variants


def customer_entity_values() -> Iterator[tuple[str, str, str]]:
    """(value, data class, label) for every value of every customer record."""
    from portal.customers.models import Customer

    rows = Customer.objects.values_list(
        "pk", "name", "organisation", "emails", "phones", "postal_address", "account_numbers"
    ).order_by("pk")
    for pk, name, organisation, emails, phones, postal_address, account_numbers in rows.iterator(chunk_size=500):
        label = f"customer {pk}"
        if name.strip():
            yield name.strip(), "PERSON", f"{label} name"
        if organisation.strip():
            yield organisation.strip(), "CUSTOMER_FIELD", f"{label} organisation"
        for email in emails:
            yield email, "EMAIL", f"{label} e-mail"
        for phone in phones:
            for variant in phone_variants(phone):
                yield variant, "PHONE", f"{label} phone"
        if postal_address.strip():
            # governance also finds its parts (street with number, postcode with city), see address_parts
            yield postal_address.strip(), "POSTAL_ADDRESS", f"{label} address"
        for account in account_numbers:
            yield account, account_number_class(account), f"{label} account"


def customer_known_entities() -> Iterator[KnownEntity]:
    """The loader registered with governance: KnownEntity(value, data_class, label) per value."""
    for value, data_class, label in customer_entity_values():
        # "customer 12 name" -> "customer:12": the key that puts this person in a prompt's context
        key = "customer:" + label.split()[1]
        yield KnownEntity(value=value, data_class=data_class, label=label, key=key)


def register_known_entity_source() -> None:
    known_entities.register_source(SOURCE_NAME, customer_known_entities)


def known_entities_invalidate_on_commit() -> None:
    """Tell governance to rebuild its dictionary once the current transaction has committed."""

    transaction.on_commit(known_entities.invalidate)
