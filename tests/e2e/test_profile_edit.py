"""An administrator edits an assistant profile in the browser (plain form post, then the list)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from audit.models import AuditEvent
from portal.assistant.models import AssistantProfile
from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.assistant.factories import AssistantProfileFactory
from tests.e2e.conftest import open_menu_link, sign_in
from tests.knowledge.factories import KnowledgeBaseFactory, grant

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_administrator_edits_a_profile_and_sees_it_saved(page: Any) -> None:
    UserFactory.create(username="alice", roles=["Administrator"])
    profile = AssistantProfileFactory.create(name="Handbook helper", usable_by=["Staff"], temperature=0.2)
    handbook = KnowledgeBaseFactory.create(name="Handbook")
    grant(handbook, "view", role="Administrator")
    sign_in(page, "alice", DEFAULT_PASSWORD)
    page.wait_for_url("**/")

    open_menu_link(page, "Assistant profiles")
    page.get_by_role("link", name="Edit Handbook helper").click()
    expect(page.get_by_role("heading", name="Edit assistant profile “Handbook helper”")).to_be_visible()
    page.get_by_label("Temperature").fill("9")  # out of range: shown next to the field
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Ensure this value is less than or equal to 2.0.")).to_be_visible()

    page.get_by_label("Temperature").fill("0.6")
    page.get_by_label("Handbook", exact=True).check()
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_text("Profile “Handbook helper” saved.")).to_be_visible()
    expect(page.get_by_role("heading", name="Assistant profiles")).to_be_visible()
    profile = AssistantProfile.objects.get(pk=profile.pk)
    assert profile.temperature == 0.6 and list(profile.knowledge_bases.all()) == [handbook]
    event = AuditEvent.objects.get(action="assistant.profile_changed")
    assert event.details["before"]["temperature"] == 0.2 and event.details["after"]["temperature"] == 0.6
