from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from portal.assistant.models import AssistantProfile
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_an_administrator_creates_a_profile_on_the_admin_screen_and_it_is_audited(client: Any, handbook: Any):
    admin_user = UserFactory.create(username="ada", roles=["Administrator"])
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
    assert event.object_id == str(profile.pk) and event.details["after"]["knowledge_bases"] == [handbook.pk]
    assert event.details["after"]["task_type"] == "" and "instructions" in event.details["fields"]
    assert "Be brief." not in str(event.details)  # free text is named, never copied


def test_staff_cannot_reach_the_profile_admin(client: Any, sam: Any):
    client.force_login(sam)
    response = client.get(reverse("admin:assistant_assistantprofile_changelist"))
    assert response.status_code == 302  # to the admin sign-in: not staff


def test_granting_a_profile_to_a_role_on_the_object_permissions_screen_is_audited(client: Any, sam: Any):
    from django.contrib.auth.models import Group

    admin_user = UserFactory.create(username="ada", roles=["Administrator"])
    client.force_login(admin_user)
    profile = AssistantProfile.objects.create(name="Payroll desk")
    role = Group.objects.get(name="Staff")
    url = reverse("admin:assistant_assistantprofile_permissions_manage_group", args=[profile.pk, role.pk])

    assert client.post(url, {"permissions": ["use_assistantprofile"]}).status_code == 302
    assert sam.has_perm("assistant.use_assistantprofile", profile)
    granted = AuditEvent.objects.get(action="assistant.profile_access_changed")
    assert granted.actor_username == "ada" and granted.object_id == str(profile.pk)
    assert granted.details["role"] == "Staff"
    assert (granted.details["before"], granted.details["after"]) == ([], ["use_assistantprofile"])

    # use withdrawn (guardian's form wants at least one permission selected)
    assert client.post(url, {"permissions": ["view_assistantprofile"]}).status_code == 302
    assert not type(sam).objects.get(pk=sam.pk).has_perm("assistant.use_assistantprofile", profile)
    withdrawn = AuditEvent.objects.filter(action="assistant.profile_access_changed").order_by("-seq").first()
    assert withdrawn is not None and withdrawn.details["after"] == ["view_assistantprofile"]
    # saving the same permissions again changes nothing and records nothing
    client.post(url, {"permissions": ["view_assistantprofile"]})
    assert AuditEvent.objects.filter(action="assistant.profile_access_changed").count() == 2


def test_marking_a_profile_sensitive_on_the_admin_screen_is_audited_with_before_and_after(client: Any):
    admin_user = UserFactory.create(username="ada", roles=["Administrator"])
    client.force_login(admin_user)
    profile = AssistantProfile.objects.create(name="Health desk", task_type="routine")

    response = client.post(
        reverse("admin:assistant_assistantprofile_change", args=[profile.pk]),
        {
            "name": "Health desk", "description": "", "instructions": "", "task_type": "routine",
            "temperature": "0.2", "max_tokens": "800", "passages": "6", "sensitive": "on", "is_active": "on",
        },
    )  # fmt: skip

    assert response.status_code == 302, response.content.decode()[:2000]
    profile.refresh_from_db()
    assert profile.sensitive is True
    event = AuditEvent.objects.get(action="assistant.profile_changed", object_id=str(profile.pk))
    assert event.details["fields"] == ["sensitive"]
    assert (event.details["before"]["sensitive"], event.details["after"]["sensitive"]) == (False, True)
