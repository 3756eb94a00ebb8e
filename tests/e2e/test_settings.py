"""An administrator tunes a parameter on the Settings screen, sees the new version and goes back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from portal.core.models import ParameterVersion
from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.e2e.conftest import open_menu_link, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("width", [390, 1280])
def test_an_administrator_changes_a_setting_and_goes_back(page: Any, width: int) -> None:
    UserFactory.create(username="alice", roles=["Administrator"])
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, "alice", DEFAULT_PASSWORD)
    page.wait_for_url("**/")
    if width < 768:
        page.get_by_role("button", name="Menu").click()
    open_menu_link(page, "Settings")
    expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()

    candidates = page.get_by_label("Candidates per search leg (passages)")
    expect(candidates).to_have_value("50")
    candidates.fill("3")
    page.get_by_role("button", name="Save a new version").click()
    expect(page.get_by_text("Ensure this value is greater than or equal to 5")).to_be_visible()
    expect(page.get_by_text("This field is required")).to_be_visible()  # the reason

    page.get_by_label("Candidates per search leg (passages)").fill("80")
    page.get_by_label("Pause memory learning").check()
    page.get_by_label("Why this change").fill("more recall for the FAQ base")
    page.get_by_role("button", name="Save a new version").click()
    expect(page.get_by_text("Settings version 1 saved")).to_be_visible()
    expect(page.get_by_label("Candidates per search leg (passages)")).to_have_value("80")
    expect(page.get_by_label("Pause memory learning")).to_be_checked()
    versions = page.get_by_role("table", name="Settings versions")
    expect(versions).to_contain_text(
        "Candidates per search leg: default → 80 passages; Pause memory learning: default → on"
    )
    if shots := os.environ.get("PORTAL_SCREENSHOTS"):
        page.screenshot(path=str(Path(shots) / f"settings-{width}.png"), full_page=True)

    page.get_by_label("Candidates per search leg (passages)").fill("")  # empty: back to the default
    page.get_by_label("Why this change").fill("default again")
    page.get_by_role("button", name="Save a new version").click()
    expect(page.get_by_text("Settings version 2 saved")).to_be_visible()
    expect(page.get_by_label("Candidates per search leg (passages)")).to_have_value("50")
    versions.get_by_role("row").filter(has_text="more recall").get_by_role("button").click()
    expect(page.get_by_text("Back to the values of version 1, saved as version 3")).to_be_visible()
    expect(page.get_by_label("Candidates per search leg (passages)")).to_have_value("80")
    assert ParameterVersion.objects.count() == 3
