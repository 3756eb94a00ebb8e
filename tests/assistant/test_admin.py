from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from portal.assistant.models import AssistantProfile
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_an_administrator_creates_a_profile_on_the_admin_screen_and_it_is_audited(client: Any, handbook: Any):
    admin_user = UserFactory(username="ada", roles=["Administrator"], is_staff=True)
    client.force_login(admin_user)

    response = client.post(
        reverse("admin:assistant_assistantprofile_add"),
        {
            "name": "Refund desk", "description": "", "instructions": "Be brief.", "knowledge_bases": [handbook.pk],
            "task_type": "", "temperature": "0.2", "max_tokens": "600", "passages": "4", "is_active": "on",
        },
    )  # fmt: skip

    assert response.status_code == 302, response.content.decode()[:2000]
    profile = AssistantProfile.objects.get(name="Refund desk")
    assert list(profile.knowledge_bases.all()) == [handbook] and profile.task_type == ""
    event = AuditEvent.objects.get(action="assistant.profile_created")
    assert event.object_id == str(profile.pk) and event.details["knowledge_base_ids"] == [handbook.pk]


def test_staff_cannot_reach_the_profile_admin(client: Any, sam: Any):
    client.force_login(sam)
    response = client.get(reverse("admin:assistant_assistantprofile_changelist"))
    assert response.status_code == 302  # to the admin sign-in: not staff
