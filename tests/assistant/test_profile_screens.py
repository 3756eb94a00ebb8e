"""The portal's assistant-profile screens: create, edit, and who may use a profile; allowed, 403 and 404."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from audit.models import AuditEvent
from portal.assistant.forms import ERROR_PROFILE_GRANTEE
from portal.assistant.models import AssistantProfile
from portal.assistant.selectors import profiles_for_user
from portal.core.forms import ERROR_UNKNOWN_USER
from tests.accounts.factories import UserFactory
from tests.assistant.factories import AssistantProfileFactory
from tests.knowledge.factories import KnowledgeBaseFactory, grant

pytestmark = pytest.mark.django_db

SECRET_INSTRUCTIONS = "Answer as the head of payroll would."


def profile_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Payroll helper",
        "description": "Questions about pay",
        "instructions": SECRET_INSTRUCTIONS,
        "task_type": "routine",
        "temperature": "0.3",
        "max_tokens": "600",
        "passages": "5",
        "is_active": "on",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def form_data(profile: AssistantProfile, **overrides: Any) -> dict[str, Any]:
    """What the edit page posts back unchanged, with some fields changed."""
    data: dict[str, Any] = {
        "name": profile.name,
        "description": profile.description,
        "instructions": profile.instructions,
        "task_type": profile.task_type,
        "temperature": str(profile.temperature),
        "max_tokens": str(profile.max_tokens),
        "passages": str(profile.passages),
        "knowledge_bases": [str(pk) for pk in profile.knowledge_bases.values_list("pk", flat=True)],
    }
    for flag in ("all_readable_knowledge", "sensitive", "is_active"):
        if getattr(profile, flag):
            data[flag] = "on"
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def edit_url(profile: AssistantProfile) -> str:
    return reverse("assistant:profile_edit", kwargs={"profile_id": profile.pk})


def access_url(profile: AssistantProfile) -> str:
    return reverse("assistant:profile_access", kwargs={"profile_id": profile.pk})


@pytest.fixture
def handbook(db: None) -> Any:
    knowledge_base = KnowledgeBaseFactory.create(name="Handbook")
    grant(knowledge_base, "view", role="Administrator")
    return knowledge_base


@pytest.fixture
def board_papers(db: None) -> Any:
    """A knowledge base nobody in the cast may read."""
    return KnowledgeBaseFactory.create(name="Board papers")


# ---- creating and editing -------------------------------------------------------------------------------
def test_an_administrator_creates_a_profile_and_the_event_names_free_text_without_its_value(
    client: Any, alice: Any, handbook: Any
) -> None:
    client.force_login(alice)
    response = client.post(reverse("assistant:profile_new"), profile_data(knowledge_bases=[str(handbook.pk)]))

    assert response.status_code == 302 and response["Location"] == reverse("assistant:profile_list")
    profile = AssistantProfile.objects.get(name="Payroll helper")
    assert (profile.temperature, profile.max_tokens, profile.passages, profile.is_active) == (0.3, 600, 5, True)
    assert list(profile.knowledge_bases.all()) == [handbook]
    event = AuditEvent.objects.get(action="assistant.profile_created")
    assert event.object_id == str(profile.pk) and event.actor_id == alice.pk
    assert event.details["after"]["name"] == "Payroll helper"
    assert event.details["after"]["knowledge_bases"] == [handbook.pk]
    assert event.details["after"]["temperature"] == 0.3
    assert set(event.details["fields"]) == {"description", "instructions"}  # named, never written
    assert SECRET_INSTRUCTIONS not in json.dumps(event.details) and "Questions about pay" not in json.dumps(
        event.details
    )


def test_an_administrator_edits_a_profile_and_the_event_has_before_and_after_of_what_changed(
    client: Any, alice: Any
) -> None:
    profile = AssistantProfileFactory.create(name="Handbook helper", temperature=0.2, max_tokens=800)
    client.force_login(alice)

    response = client.post(
        edit_url(profile), form_data(profile, temperature="0.7", instructions=SECRET_INSTRUCTIONS, is_active=None)
    )

    assert response.status_code == 302
    profile.refresh_from_db()
    assert (profile.temperature, profile.instructions, profile.is_active) == (0.7, SECRET_INSTRUCTIONS, False)
    event = AuditEvent.objects.get(action="assistant.profile_changed")
    assert event.details["fields"] == ["instructions", "is_active", "temperature"]
    assert event.details["before"] == {"is_active": True, "temperature": 0.2}
    assert event.details["after"] == {"is_active": False, "temperature": 0.7}
    assert SECRET_INSTRUCTIONS not in json.dumps(event.details)


def test_saving_a_profile_unchanged_writes_no_event(client: Any, alice: Any) -> None:
    profile = AssistantProfileFactory.create(name="Handbook helper")
    client.force_login(alice)
    assert client.post(edit_url(profile), form_data(profile)).status_code == 302
    assert not AuditEvent.objects.filter(action="assistant.profile_changed").exists()


def test_form_errors_are_shown_next_to_their_fields_and_nothing_is_saved(client: Any, alice: Any) -> None:
    AssistantProfileFactory.create(name="Payroll helper")
    client.force_login(alice)

    response = client.post(reverse("assistant:profile_new"), profile_data(temperature="5", max_tokens="2"))

    assert response.status_code == 400
    page = response.content.decode()
    assert "Assistant profile with this Name already exists." in page
    assert "Ensure this value is less than or equal to 2.0." in page
    assert "Ensure this value is greater than or equal to 16." in page
    assert AssistantProfile.objects.count() == 1
    assert not AuditEvent.objects.filter(action__startswith="assistant.profile_").exists()


def test_profile_names_and_descriptions_are_escaped(client: Any, alice: Any) -> None:
    profile = AssistantProfileFactory.create(name="<script>alert(1)</script>", description="<b>bold</b>")
    client.force_login(alice)
    for url in (reverse("assistant:profile_list"), edit_url(profile), access_url(profile)):
        page = client.get(url).content.decode()
        assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<b>bold</b>" not in page


def test_an_unknown_profile_is_404_for_an_administrator(client: Any, alice: Any) -> None:
    client.force_login(alice)
    assert client.get(reverse("assistant:profile_edit", kwargs={"profile_id": 999999})).status_code == 404
    assert client.get(reverse("assistant:profile_access", kwargs={"profile_id": 999999})).status_code == 404


# ---- who may open the screens ---------------------------------------------------------------------------
def test_staff_without_the_permission_get_403_and_change_nothing(client: Any, sam: Any, oscar: Any) -> None:
    profile = AssistantProfileFactory.create(name="Handbook helper", usable_by=["Staff"], temperature=0.2)
    for user in (sam, oscar):
        client.force_login(user)
        assert client.get(reverse("assistant:profile_new")).status_code == 403
        assert client.post(reverse("assistant:profile_new"), profile_data()).status_code == 403
        assert client.get(edit_url(profile)).status_code == 403
        assert client.post(edit_url(profile), form_data(profile, temperature="1.5")).status_code == 403
        assert client.get(access_url(profile)).status_code == 403
        group = Group.objects.get(name="Auditor")
        assert client.post(access_url(profile), {"action": "grant", "group": group.pk}).status_code == 403
    profile.refresh_from_db()
    assert profile.temperature == 0.2 and AssistantProfile.objects.count() == 1
    assert not AuditEvent.objects.filter(action__startswith="assistant.profile_").exists()


def test_staff_see_no_link_to_the_screens_they_cannot_open(client: Any, sam: Any) -> None:
    profile = AssistantProfileFactory.create(name="Handbook helper", usable_by=["Staff"])
    client.force_login(sam)
    page = client.get(reverse("assistant:profile_list")).content.decode()
    assert "Handbook helper" in page  # the list itself is theirs to read
    assert reverse("assistant:profile_new") not in page
    assert edit_url(profile) not in page and access_url(profile) not in page
    assert reverse("assistant:profile_list") not in client.get("/").content.decode()  # no Manage entry


def test_administrators_get_the_links_and_the_manage_entry(client: Any, alice: Any) -> None:
    profile = AssistantProfileFactory.create(name="Handbook helper")
    client.force_login(alice)
    page = client.get(reverse("assistant:profile_list")).content.decode()
    assert reverse("assistant:profile_new") in page
    assert edit_url(profile) in page and access_url(profile) in page
    assert f'href="{reverse("assistant:profile_list")}"' in client.get("/").content.decode()


# ---- knowledge-base choices -----------------------------------------------------------------------------
def test_knowledge_base_choices_exclude_bases_the_editor_cannot_read(
    client: Any, alice: Any, handbook: Any, board_papers: Any
) -> None:
    client.force_login(alice)
    page = client.get(reverse("assistant:profile_new")).content.decode()
    assert "Handbook" in page and "Board papers" not in page

    response = client.post(reverse("assistant:profile_new"), profile_data(knowledge_bases=[str(board_papers.pk)]))

    assert response.status_code == 400
    assert "Select a valid choice." in response.content.decode()
    assert not AssistantProfile.objects.exists()


def test_editing_keeps_the_knowledge_bases_the_editor_cannot_read(
    client: Any, alice: Any, handbook: Any, board_papers: Any
) -> None:
    profile = AssistantProfileFactory.create(name="Board helper", knowledge_bases=[board_papers])
    client.force_login(alice)
    page = client.get(edit_url(profile)).content.decode()
    assert "Board papers" not in page and "1 knowledge base you may not read" in page

    response = client.post(edit_url(profile), form_data(profile, knowledge_bases=[str(handbook.pk)]))

    assert response.status_code == 302
    assert set(profile.knowledge_bases.all()) == {handbook, board_papers}
    event = AuditEvent.objects.get(action="assistant.profile_changed")
    assert event.details["before"]["knowledge_bases"] == [board_papers.pk]
    assert event.details["after"]["knowledge_bases"] == sorted([handbook.pk, board_papers.pk])


# ---- who may use a profile ------------------------------------------------------------------------------
def test_a_grant_to_a_role_lets_its_members_use_the_profile_and_a_revoke_takes_it_away(
    client: Any, alice: Any, sam: Any
) -> None:
    profile = AssistantProfileFactory.create(name="Payroll helper")
    staff = Group.objects.get(name="Staff")
    assert profile not in profiles_for_user(user=sam)
    client.force_login(alice)

    response = client.post(access_url(profile), {"action": "grant", "group": staff.pk})

    assert response.status_code == 302 and response["Location"] == access_url(profile)
    assert profile in profiles_for_user(user=sam)
    granted = AuditEvent.objects.get(action="assistant.profile_access_granted")
    assert granted.object_id == str(profile.pk) and granted.details["role"] == "Staff"
    page = client.get(access_url(profile)).content.decode()
    assert 'Revoke<span class="visually-hidden"> from the role Staff' in page

    response = client.post(access_url(profile), {"action": "revoke", "group": staff.pk})

    assert response.status_code == 302
    assert profile not in profiles_for_user(user=sam)
    revoked = AuditEvent.objects.get(action="assistant.profile_access_revoked")
    assert revoked.details["role"] == "Staff"


def test_a_grant_to_one_user_is_audited_by_user_id_never_by_name(client: Any, alice: Any) -> None:
    profile = AssistantProfileFactory.create(name="Payroll helper")
    sara = UserFactory.create(username="sara.jones", roles=["Staff"])
    client.force_login(alice)

    assert client.post(access_url(profile), {"action": "grant", "username": "sara.jones"}).status_code == 302

    assert profile in profiles_for_user(user=sara)
    event = AuditEvent.objects.get(action="assistant.profile_access_granted")
    assert event.details["user_id"] == sara.pk and "role" not in event.details
    assert "sara" not in json.dumps(event.details)

    assert client.post(access_url(profile), {"action": "revoke", "username": "sara.jones"}).status_code == 302
    assert profile not in profiles_for_user(user=sara)
    assert AuditEvent.objects.get(action="assistant.profile_access_revoked").details["user_id"] == sara.pk


def test_a_grant_needs_exactly_one_role_or_user(client: Any, alice: Any) -> None:
    profile = AssistantProfileFactory.create(name="Payroll helper")
    staff = Group.objects.get(name="Staff")
    client.force_login(alice)

    neither = client.post(access_url(profile), {"action": "grant"})
    both = client.post(access_url(profile), {"action": "grant", "group": staff.pk, "username": "alice"})
    unknown = client.post(access_url(profile), {"action": "grant", "username": "nobody-here"})

    for response in (neither, both):
        assert response.status_code == 400 and ERROR_PROFILE_GRANTEE in response.content.decode()
    assert unknown.status_code == 400 and ERROR_UNKNOWN_USER in unknown.content.decode()
    assert not AuditEvent.objects.filter(action__startswith="assistant.profile_access").exists()


def test_granting_twice_writes_one_event(client: Any, alice: Any) -> None:
    profile = AssistantProfileFactory.create(name="Payroll helper")
    staff = Group.objects.get(name="Staff")
    client.force_login(alice)
    client.post(access_url(profile), {"action": "grant", "group": staff.pk})
    client.post(access_url(profile), {"action": "grant", "group": staff.pk})
    assert AuditEvent.objects.filter(action="assistant.profile_access_granted").count() == 1
