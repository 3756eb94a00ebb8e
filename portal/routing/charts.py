"""Server-side SVG charts: geometry computed here, markup in the template (no JavaScript, no CDN)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from portal.routing.money import money_text

WIDTH = 720
HEIGHT = 220
MARGIN_LEFT = 56
MARGIN_BOTTOM = 28
MARGIN_TOP = 12


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    title: str
    show_label: bool
    error_height: float


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    plot_left: int
    plot_bottom: int
    plot_top: int
    bars: list[Bar]
    ticks: list[tuple[float, str]]  # (y, label)
    caption: str


def _nice_ceiling(value: Decimal) -> Decimal:
    if value <= 0:
        return Decimal(1)
    step = Decimal(1)
    while step * 10 <= value:
        step *= 10
    while step > value:
        step /= 10
    for factor in (1, 2, 5, 10):
        if step * factor >= value:
            return step * factor
    return step * 10


def daily_cost_chart(rows: list[dict[str, Any]], *, currency: str) -> BarChart:
    """One bar per day: height = spend; the red part = share of calls that failed that day."""
    top = _nice_ceiling(max((Decimal(row["cost"]) for row in rows), default=Decimal(0)))
    plot_width = WIDTH - MARGIN_LEFT - 8
    plot_height = HEIGHT - MARGIN_BOTTOM - MARGIN_TOP
    slot = plot_width / max(1, len(rows))
    label_every = max(1, len(rows) // 10)
    bars = []
    for index, row in enumerate(rows):
        cost = Decimal(row["cost"])
        height = float(cost / top) * plot_height if top else 0.0
        if cost > 0:
            height = max(height, 1.5)  # a day with any spend stays visible
        error_share = row["errors"] / row["calls"] if row["calls"] else 0.0
        day = row["day"]
        bars.append(
            Bar(
                x=round(MARGIN_LEFT + index * slot + slot * 0.1, 2),
                y=round(MARGIN_TOP + plot_height - height, 2),
                width=round(slot * 0.8, 2),
                height=round(height, 2),
                label=day.strftime("%d %b"),
                title=f"{day:%Y-%m-%d}: {currency} {money_text(cost)}, {row['calls']} calls, {row['errors']} failed",
                show_label=index % label_every == 0,
                error_height=round(height * error_share, 2),
            )
        )
    ticks = [
        (round(MARGIN_TOP + plot_height * (1 - fraction), 2), money_text(top * Decimal(str(fraction))))
        for fraction in (0, 0.5, 1)
    ]
    total = sum((Decimal(row["cost"]) for row in rows), Decimal(0))
    caption = f"Spend per day ({currency}), {len(rows)} days, total {money_text(total)}"
    return BarChart(WIDTH, HEIGHT, MARGIN_LEFT, MARGIN_TOP + plot_height, MARGIN_TOP, bars, ticks, caption)
