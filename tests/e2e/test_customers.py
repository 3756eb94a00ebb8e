"""Import customers, open one, record an interaction, ask the assistant about them, read the manifest."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from playwright.sync_api import expect

from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.assistant.factories import AssistantProfileFactory
from tests.e2e.conftest import sign_in
from tests.e2e.waits import WORK_WAIT_MS
from tests.routing.factories import CatalogModelFactory

pytestmark = pytest.mark.django_db(transaction=True)

CSV = (
    "name,organisation,emails,phones,tier\n"
    "Elodie Marchetti,Marchetti Fine Bakeries,elodie@marchetti.example,020 7946 0321,key\n"
    "Broken Row,Nowhere Ltd,not-an-address,,standard\n"
    "Tomasz Wieczorek,Wieczorek Logistics,t.w@wlogistics.example,0161 496 0754,priority\n"
)


def _reply(body: dict[str, Any]) -> str:
    sent = json.dumps(body)
    person = re.search(r"<PERSON_\d+>", sent)
    return f"Dear {person.group(0) if person else 'customer'}, the credit note for order 5521 is confirmed."


def test_import_customers_open_one_and_ask_the_assistant_about_them(asgi_page: Any, fake_provider: Any) -> None:  # noqa: F811
    page = asgi_page
    ada = UserFactory.create(username="ada", first_name="Ada", last_name="Admin", roles=["Administrator", "Staff"])
    ada.password = PBKDF2PasswordHasher().encode(DEFAULT_PASSWORD, PBKDF2PasswordHasher().salt())
    ada.save(update_fields=["password"])
    AssistantProfileFactory.create(name="Customer helper", usable_by=["Staff"], task_type="draft")
    for tier in ("economy", "standard", "premium"):
        CatalogModelFactory.create(display_name=f"Fake {tier}", api_base=fake_provider.url, tier=tier)
    fake_provider.answer_with(_reply)

    sign_in(page, "ada", DEFAULT_PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Customers").click()
    page.get_by_role("link", name="Import CSV").click()
    page.get_by_label("CSV file").set_input_files(
        {"name": "customers.csv", "mimeType": "text/csv", "buffer": CSV.encode()}
    )
    page.get_by_role("button", name="Import").click()
    report = page.locator(".import-report")
    expect(report).to_contain_text("2 of 3 rows imported, 1 rejected")
    expect(report.get_by_role("row", name=re.compile(r"^3 .*not an e-mail address"))).to_be_visible()

    page.get_by_role("link", name="Go to the customers").click()
    expect(page).to_have_url(re.compile(r"/customers/$"))
    page.wait_for_load_state("load")  # htmx binds its triggers on DOMContentLoaded, which comes first
    with page.expect_response(lambda response: "q=bakeries" in response.url):
        page.get_by_label("Search").fill("bakeries")  # live search (htmx)
    table = page.locator("#customer-table")
    expect(table.get_by_role("link", name="Tomasz Wieczorek")).to_have_count(0)
    table.get_by_role("link", name="Elodie Marchetti").click()
    expect(page.get_by_role("heading", name="Elodie Marchetti")).to_be_visible()

    page.get_by_text("Record an interaction").click()
    page.get_by_label("Channel").select_option("email")
    page.get_by_label("Summary").fill("Asks to confirm the credit note for order 5521")
    page.get_by_label("Full text").fill("Could you confirm the credit note for order 5521? Best, Elodie Marchetti")
    page.get_by_role("button", name="Record").click()
    timeline = page.locator("ol.timeline")
    expect(timeline).to_contain_text("Asks to confirm the credit note for order 5521")

    page.get_by_role("button", name="Ask the assistant about Elodie Marchetti").click()
    page.get_by_label("Your question").fill("Draft a reply to this customer's last e-mail.")
    page.get_by_role("button", name="Ask").click()
    answer = page.locator(".chat-assistant").last
    expect(answer.locator(".answer-details")).to_have_count(1, timeout=WORK_WAIT_MS)  # first use loads the models
    expect(answer.locator(".chat-text")).to_contain_text("Dear Elodie Marchetti, the credit note for order 5521")
    answer.get_by_text("Details", exact=True).click()
    manifest = answer.locator("table.manifest")
    expect(manifest).to_contain_text("customer")
    assert "Elodie Marchetti" not in fake_provider.requests[-1].text
    assert "elodie@marchetti.example" not in fake_provider.requests[-1].text
