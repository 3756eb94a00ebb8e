from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.e2e.conftest import open_menu_link, sign_in
from tests.routing.factories import UsageFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_administrator_reads_spend_on_the_usage_page_and_changes_the_period(page: Any) -> None:
    alice = UserFactory(username="alice", roles=["Administrator"])
    UsageFactory(user=alice, username="alice", roles=["Administrator"], model_name="Claude", cost=Decimal("1.25"))
    sign_in(page, "alice", DEFAULT_PASSWORD)

    open_menu_link(page, "AI usage")

    expect(page.get_by_role("heading", name="AI usage and spend")).to_be_visible()
    expect(page.get_by_role("img", name="Spend per day")).to_be_visible()  # the inline SVG chart
    expect(page.locator("#usage-report")).to_contain_text("Claude")
    page.get_by_label("Period").select_option("7")
    expect(page.locator("figcaption")).to_contain_text("7 days")
    assert "days=7" in page.url
