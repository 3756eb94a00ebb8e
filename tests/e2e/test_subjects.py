from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from audit.models import AuditEvent
from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.customers.factories import CustomerFactory, InteractionFactory
from tests.e2e.conftest import open_menu_link, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def eager_worker() -> Iterator[None]:
    """The live server runs in this process: run the request there instead of in a Celery worker."""
    from portal.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def test_an_officer_requests_access_for_a_customer_and_downloads_the_bundle(
    page: Any, eager_worker: None, tmp_path: Path
) -> None:
    UserFactory.create(username="olivia", first_name="Olivia", roles=["Governance officer"])
    customer = CustomerFactory.create(name="Rosalind Featherstone", emails=["rosalind@featherstone.example"],
                               phones=["0113 496 0555"])  # fmt: skip
    InteractionFactory.create(customer=customer, summary="Asked what we hold about her")
    sign_in(page, "olivia", DEFAULT_PASSWORD)
    open_menu_link(page, "Data requests")
    expect(page.get_by_role("heading", name="Data-subject requests")).to_be_visible()
    page.get_by_label("Request").select_option("access")
    page.get_by_label("About a").select_option("customer")
    page.get_by_label("Number (id)").fill(str(customer.pk))
    page.get_by_label("Reason").fill("letter of 2 December")
    page.get_by_role("button", name="Start the request").click()
    expect(page.get_by_role("heading", name="Data-subject request #")).to_be_visible()
    download_link = page.get_by_role("link", name="Download the bundle")
    expect(download_link).to_be_visible()
    with page.expect_download() as download_info:
        download_link.click()
    saved = tmp_path / "bundle.zip"
    download_info.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        assert "interactions.csv" in archive.namelist()
        bundle = json.loads(archive.read("bundle.json"))
    assert bundle["sections"]["record"][0]["name"] == "Rosalind Featherstone"
    assert [row["summary"] for row in bundle["sections"]["interactions"]] == ["Asked what we hold about her"]
    assert AuditEvent.objects.filter(action="subjects.bundle_downloaded").count() == 1
