"""Checks shared by the customer form and the CSV import, so both accept and refuse the same values."""

from __future__ import annotations

import re
from collections.abc import Iterable

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from stdnum import iban

ERROR_EMAIL = "{value!r} is not an e-mail address."
ERROR_PHONE = "{value!r} is not a phone number."
ERROR_IBAN = "{value!r} looks like an IBAN but its check digits are wrong."
ERROR_ACCOUNT = "{value!r} is not an account number (4 to 34 letters, digits, spaces or dashes)."

_IBAN_SHAPE = re.compile(r"^[A-Za-z]{2}\d{2}[A-Za-z0-9 ]{8,}$")
_ACCOUNT_SHAPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 /-]{2,32}[A-Za-z0-9]$")
_SEPARATORS = re.compile(r"[\n;|]")


def split_values(text: str, separators: re.Pattern[str] = _SEPARATORS) -> list[str]:
    """Several values in one cell or text box: one per line, or separated by ';' or '|'."""
    seen: list[str] = []
    for piece in separators.split(text or ""):
        value = piece.strip()
        if value and value not in seen:
            seen.append(value)
    return seen


def clean_emails(values: Iterable[str]) -> list[str]:
    cleaned = []
    for value in values:
        try:
            validate_email(value)
        except ValidationError as error:
            raise ValidationError(ERROR_EMAIL.format(value=value)) from error
        cleaned.append(value.lower() if value.isascii() else value)
    return cleaned


def clean_phones(values: Iterable[str]) -> list[str]:
    cleaned = []
    for value in values:
        try:
            parsed = phonenumbers.parse(value, settings.CUSTOMERS_DEFAULT_PHONE_REGION)
        except phonenumbers.NumberParseException as error:
            raise ValidationError(ERROR_PHONE.format(value=value)) from error
        if not phonenumbers.is_possible_number(parsed):
            raise ValidationError(ERROR_PHONE.format(value=value))
        cleaned.append(value)
    return cleaned


def clean_account_numbers(values: Iterable[str]) -> list[str]:
    cleaned = []
    for value in values:
        if _IBAN_SHAPE.match(value):
            if not iban.is_valid(value):
                raise ValidationError(ERROR_IBAN.format(value=value))
            cleaned.append(iban.format(value))
        elif _ACCOUNT_SHAPE.match(value):
            cleaned.append(value)
        else:
            raise ValidationError(ERROR_ACCOUNT.format(value=value))
    return cleaned
