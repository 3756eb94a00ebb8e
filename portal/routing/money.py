"""Money as text that is never false: enough digits for what was really spent, and never 0.00 for a sum
that is not zero (a 0.0001 budget is not "0.00", a day that cost 0.0045 is not "0.00")."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

MIN_DECIMALS = 2
SIGNIFICANT_DIGITS = 3  # below 1, this many significant digits: 0.0145, 0.00452 -> 0.0045 (trailing 0 dropped)
MAX_DECIMALS = 8  # what the usage rows store (router: quantized to 0.00000001)


def money_text(value: object) -> str:
    """`value` (Decimal, number or numeric string; None or "" count as 0) as a plain number text."""
    try:
        amount = Decimal(str(value)) if value not in (None, "") else Decimal(0)
    except InvalidOperation:
        return str(value)
    if not amount.is_finite():
        return str(value)
    if amount == 0:
        return "0.00"
    magnitude = abs(amount)
    smallest = Decimal(1).scaleb(-MAX_DECIMALS)
    if magnitude < smallest:
        return f"{'-' if amount < 0 else ''}< {smallest:f}"
    # position of the first significant digit: 0.0045 -> -3, 12.5 -> 1
    first_digit = magnitude.adjusted()
    decimals = min(MAX_DECIMALS, max(MIN_DECIMALS, SIGNIFICANT_DIGITS - 1 - first_digit))
    text = f"{amount.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP):f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(MIN_DECIMALS, "0")
    return f"{whole}.{fraction}"
