from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.e2e.conftest import open_menu_link, sign_in
from tests.routing.factories import BudgetFactory, UsageFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_administrator_reads_spend_on_the_usage_page_and_changes_the_period(page: Any) -> None:
    alice = UserFactory.create(username="alice", roles=["Administrator"])
    UsageFactory.create(
        user=alice, username="alice", roles=["Administrator"], model_name="Claude", cost=Decimal("1.25")
    )
    sign_in(page, "alice", DEFAULT_PASSWORD)

    open_menu_link(page, "AI usage")

    expect(page.get_by_role("heading", name="AI usage and spend")).to_be_visible()
    expect(page.get_by_role("img", name="Spend per day")).to_be_visible()  # the inline SVG chart
    expect(page.locator("#usage-report")).to_contain_text("Claude")
    page.get_by_label("Period").select_option("7")
    expect(page.locator("figcaption")).to_contain_text("7 days")
    assert "days=7" in page.url


def test_small_spend_and_budgets_read_true_in_the_browser(page: Any) -> None:
    alice = UserFactory.create(username="alice", roles=["Administrator"])
    UsageFactory.create(
        user=alice, username="alice", roles=["Administrator"], model_name="Claude", cost=Decimal("0.0045")
    )
    BudgetFactory.create(role=Group.objects.get(name="Staff"), limit=Decimal("0.0001"), period="day")
    sign_in(page, "alice", DEFAULT_PASSWORD)
    page.goto("/routing/usage/")
    chart = page.get_by_role("img", name="Spend per day")
    expect(chart).to_contain_text("0.005")  # the axis top, not 0.00
    expect(page.locator(".usage-totals")).to_contain_text("0.0045")
    page.goto("/routing/models/")
    expect(page.get_by_role("cell", name="USD 0.0001 per day")).to_be_visible()
