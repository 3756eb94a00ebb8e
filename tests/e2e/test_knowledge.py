"""Upload a PDF in the browser, wait until it is ready, search it and open the cited page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.e2e.conftest import sign_in
from tests.e2e.waits import WORK_WAIT_MS
from tests.knowledge.factories import KnowledgeBaseFactory, grant, pdf_bytes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def eager_worker() -> Iterator[None]:
    """The live server runs in this process; run ingestion there instead of in a Celery worker."""
    from portal.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def knowledge_storage(settings: Any, tmp_path: Path) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "knowledge": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "files")},
        },
    }


def test_upload_a_pdf_search_it_and_open_the_cited_page(page: Any, tmp_path: Path, eager_worker: None) -> None:
    UserFactory.create(username="sam", first_name="Sam", last_name="Staff", roles=["Staff"])
    knowledge_base = KnowledgeBaseFactory.create(name="Travel")
    grant(knowledge_base, "change", role="Staff")
    pdf = tmp_path / "travel_policy.pdf"
    pdf.write_bytes(
        pdf_bytes(
            [
                ["Trains are preferred for trips under six hours."],
                ["Hotels in London are reimbursed up to 220 EUR per night."],
            ],
            title="Travel policy",
        )
    )

    sign_in(page, "sam", DEFAULT_PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Knowledge").click()
    page.get_by_role("link", name="Travel").click()
    page.get_by_label("Files").set_input_files(str(pdf))
    page.get_by_role("button", name="Upload").click()
    upload = page.locator("#upload-list")
    expect(upload).to_contain_text("travel_policy.pdf")
    expect(upload).to_contain_text("Ready", timeout=WORK_WAIT_MS)
    # the documents table lists it without a reload
    table = page.locator("#document-table")
    expect(table).to_contain_text("travel_policy.pdf")
    expect(table).to_contain_text("Ready")
    expect(table).not_to_contain_text("No documents yet.")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Search").click()
    page.get_by_label("Search").fill("London hotel limit")
    result = page.locator(".search-result").first
    # the two short pages make one chunk, which says which pages it covers and links to the page
    # whose text matches the search
    expect(result).to_contain_text("pages 1–2")
    expect(result.locator("mark").first).to_be_visible()
    result.get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/knowledge/documents/\d+/#page-2$"))
    expect(page.locator("#page-2")).to_be_visible()
    expect(page.get_by_text("Hotels in London are reimbursed up to 220 EUR per night.")).to_be_visible()

    # misspelt, it finds the same passage, its snippet marks the words as the document writes them, and
    # the link still goes to the page they are on
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Search").click()
    page.get_by_label("Search").fill("Lodnon hotl limit")
    expect(page.locator("#search-results")).to_contain_text("Also searched as “London hotels limit”.")
    result = page.locator(".search-result").first
    expect(result.locator("mark", has_text="London")).to_be_visible()
    expect(result.locator("mark", has_text="Hotels")).to_be_visible()
    expect(result.get_by_role("link")).to_have_attribute("href", re.compile(r"#page-2$"))


def test_a_reader_sees_who_reads_the_base_and_that_no_assistant_uses_it_yet(page: Any) -> None:
    from tests.assistant.factories import AssistantProfileFactory

    UserFactory.create(username="sam", roles=["Staff"])
    handbook = KnowledgeBaseFactory.create(name="Handbook")
    grant(handbook, "view", role="Staff")
    sign_in(page, "sam", DEFAULT_PASSWORD)
    page.goto(f"/knowledge/{handbook.pk}/")
    usage = page.get_by_role("region", name="Who reads it, what uses it")
    expect(usage).to_contain_text("Readable by the role Staff")
    expect(usage).to_contain_text("No assistant profile searches this knowledge base yet")

    AssistantProfileFactory.create(name="Handbook helper", usable_by=["Staff"]).knowledge_bases.add(handbook)
    page.reload()
    expect(usage).to_contain_text("Searched by the assistant profile Handbook helper")


def test_deleting_a_document_asks_first_and_a_no_keeps_it(page: Any) -> None:
    from knowledge.models import Document
    from tests.knowledge.factories import ready_document

    UserFactory.create(username="sam", first_name="Sam", last_name="Staff", roles=["Staff"])
    knowledge_base = KnowledgeBaseFactory.create(name="Travel")
    grant(knowledge_base, "change", role="Staff")
    document = ready_document(knowledge_base, "trains.md", b"Trains are preferred for short trips.", title="Trains")
    questions: list[str] = []

    def answer(reply: str) -> Any:
        def handle(dialog: Any) -> None:
            questions.append(dialog.message)
            if reply == "yes":
                dialog.accept()
            else:
                dialog.dismiss()

        return handle

    sign_in(page, "sam", DEFAULT_PASSWORD)
    page.goto(f"/knowledge/documents/{document.pk}/")
    page.once("dialog", answer("no"))
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("heading", name="Trains")).to_be_visible()
    assert questions == ["Delete this document and its chunks?"]
    assert Document.objects.filter(pk=document.pk).exists()

    page.once("dialog", answer("yes"))
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Trains deleted.")).to_be_visible()
    assert len(questions) == 2 and not Document.objects.filter(pk=document.pk).exists()
