"""Attach files to a conversation in a real browser: a good file becomes Ready, a broken one fails alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from knowledge.models import Document, DocumentStatus
from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.assistant.factories import AssistantProfileFactory, ConversationFactory
from tests.e2e.conftest import sign_in
from tests.e2e.waits import WORK_WAIT_MS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("knowledge_storage", "eager_tasks")]


def test_attach_a_note_and_a_renamed_program_to_a_conversation(page: Any, tmp_path: Path) -> None:
    sam = UserFactory.create(username="sam", roles=["Staff"])
    conversation = ConversationFactory.create(
        owner=sam, profile=AssistantProfileFactory.create(usable_by=["Staff"]), title="Trip"
    )
    note = tmp_path / "trip_notes.md"
    note.write_text("# Trip\n\nThe client meeting in Lyon is on the fourth floor, room 412.\n")
    program = tmp_path / "agenda.pdf"
    program.write_bytes(b"MZ\x90\x00" + b"\x00" * 200)  # a Windows program renamed .pdf

    sign_in(page, "sam", DEFAULT_PASSWORD)
    page.goto(f"/assistant/conversations/{conversation.pk}/")
    page.get_by_label("Attach files").set_input_files([str(note), str(program)])
    page.get_by_role("button", name="Attach", exact=True).click()

    attached = page.locator("#attachment-list")
    expect(attached).to_contain_text("trip_notes.md", timeout=WORK_WAIT_MS)
    expect(page.get_by_role("alert").filter(has_text="agenda.pdf")).to_be_visible()
    expect(attached.locator("[data-status=ready]")).to_have_count(1, timeout=WORK_WAIT_MS)
    document = Document.objects.get(status=DocumentStatus.READY)
    assert (
        document.knowledge_base.unlisted
        and conversation.__class__.objects.get(pk=conversation.pk).attachments_base_id == document.knowledge_base_id
    )
    assert not Document.objects.exclude(pk=document.pk).exists()  # the broken file left nothing behind

    # the conversation's base is nowhere in the knowledge pages
    page.goto("/knowledge/")
    expect(page.get_by_text("Files of conversation")).to_have_count(0)
