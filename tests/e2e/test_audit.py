from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from audit.models import AuditEvent
from audit.services import audit
from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_auditor_filters_opens_an_event_and_exports(page: Any, tmp_path: Path) -> None:
    UserFactory.create(username="audrey", first_name="Audrey", last_name="Auditor", roles=["Auditor"])
    sam = UserFactory.create(username="sam", roles=["Staff"])
    for n in range(3):
        audit(actor=sam, action="knowledge.searched", details={"mode": f"hybrid {n}", "chunk_ids": [n]})
    audit(actor=sam, action="routing.model_called", details={"provider": "anthropic", "model": "claude"})

    sign_in(page, "audrey", DEFAULT_PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()

    # live filtering: typing in the provider box narrows the table without a page load
    page.get_by_label("Provider").fill("anthropic")
    results = page.locator("#event-results tbody")
    expect(results.get_by_role("row")).to_have_count(1)
    expect(results).to_contain_text("routing.model_called")
    assert "provider=anthropic" in page.url

    page.get_by_label("Provider").fill("")
    page.get_by_label("Action").fill("knowledge.searched")
    page.get_by_role("button", name="Filter").click()
    expect(results.get_by_role("row")).to_have_count(3)

    newest = AuditEvent.objects.filter(action="knowledge.searched").latest("seq")
    results.get_by_role("link", name=f"Event {newest.seq}").click()
    expect(page.get_by_role("heading", name=f"Audit event #{newest.seq}")).to_be_visible()
    expect(page.locator(".audit-json")).to_contain_text('"mode": "hybrid 2"')
    expect(page.get_by_text("the hash matches this content")).to_be_visible()

    page.go_back()
    expect(results.get_by_role("row")).to_have_count(3)
    with page.expect_download() as download_info:
        page.get_by_role("link", name="CSV", exact=True).click()
    download_path = tmp_path / "export.csv"
    download_info.value.save_as(download_path)
    rows = list(csv.DictReader(io.StringIO(download_path.read_text(encoding="utf-8"))))
    assert [row["action"] for row in rows] == ["knowledge.searched"] * 3
    exported = AuditEvent.objects.filter(action="audit.exported").latest("seq")
    assert exported.actor_username == "audrey"
    assert exported.details["filter"] == {"action": "knowledge.searched"}
    assert exported.details["count"] == 3


def test_staff_get_no_audit_link_and_a_403(page: Any) -> None:
    UserFactory.create(username="sam", roles=["Staff"])
    sign_in(page, "sam", DEFAULT_PASSWORD)
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit")).to_have_count(0)
    response = page.goto("/audit/")
    assert response is not None and response.status == 403


@pytest.fixture
def eager_worker() -> Iterator[None]:
    """The live server runs in this process: run the verification there instead of in a Celery worker."""
    from portal.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def test_an_auditor_verifies_the_chain_from_the_browser(page: Any, eager_worker: None) -> None:
    UserFactory.create(username="audrey", first_name="Audrey", roles=["Auditor"])
    for n in range(3):
        audit(actor=None, action="test.event", details={"n": n})
    sign_in(page, "audrey", DEFAULT_PASSWORD)
    page.goto("/audit/")
    page.get_by_role("link", name="Verify the chain").click()
    expect(page.get_by_role("heading", name="Verify the audit chain")).to_be_visible()
    expect(page.get_by_role("heading", name="No verification yet")).to_be_visible()
    page.get_by_role("button", name="Verify the chain").click()
    result = page.locator("#verification")
    expect(result).to_contain_text("Audit trail intact")
    expect(result).to_contain_text("Latest valid checkpoint")
    verified = AuditEvent.objects.get(action="audit.chain_verified")
    assert verified.actor_username == "audrey" and verified.outcome == "success"
