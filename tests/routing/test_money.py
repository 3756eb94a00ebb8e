"""Money is shown with enough digits to be true, and never as 0.00 when it is not zero."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.routing.charts import daily_cost_chart
from portal.routing.money import money_text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal(0), "0.00"),
        (None, "0.00"),
        (Decimal("0.0001"), "0.0001"),
        (Decimal("0.0045"), "0.0045"),
        (Decimal("0.00452"), "0.00452"),
        (Decimal("1.25"), "1.25"),
        (Decimal("50.0000"), "50.00"),
        (Decimal("12.3456"), "12.35"),
        (Decimal("0.000000001"), "< 0.00000001"),
        ("0.10000000", "0.10"),
    ],
)
def test_money_text(value: object, text: str) -> None:
    assert money_text(value) == text


@given(st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(10**6), places=8))
def test_a_non_zero_sum_is_never_shown_as_zero_and_is_close_to_the_truth(amount: Decimal) -> None:
    text = money_text(amount)
    shown = Decimal(text)
    assert shown != 0
    assert abs(shown - amount) <= amount * Decimal("0.005") + Decimal("0.005") * (amount >= 1)


def test_the_chart_axis_and_caption_show_small_spend_truthfully() -> None:
    rows = [{"day": dt.date(2026, 1, day), "cost": "0.0045", "calls": 3, "errors": 0} for day in (1, 2)]
    chart = daily_cost_chart(rows, currency="USD")
    labels = [label for _, label in chart.ticks]
    assert labels == ["0.00", "0.0025", "0.005"]  # was 0.00, 0.00, 0.00
    assert chart.caption.endswith("total 0.009")
    assert "USD 0.0045" in chart.bars[0].title
