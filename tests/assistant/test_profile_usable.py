"""profile_is_usable answers exactly as guardian's query of profiles_for_user does, grant by grant."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from guardian.shortcuts import assign_perm

from portal.assistant.selectors import profile_is_usable, profiles_for_user
from tests.accounts.factories import UserFactory
from tests.assistant.factories import AssistantProfileFactory

pytestmark = pytest.mark.django_db


def _guardian_says(user: Any, profile: Any) -> bool:
    return profiles_for_user(user=user).filter(pk=profile.pk).exists()


def _both(user: Any, profile: Any) -> bool:
    answer = profile_is_usable(user=user, profile_id=profile.pk)
    assert answer == _guardian_says(user, profile)
    return answer


def test_a_grant_to_the_user_or_one_of_their_roles_makes_it_usable() -> None:
    staff = UserFactory.create(roles=["Staff"])
    to_user, to_role, to_other_role, to_nobody = (AssistantProfileFactory.create() for _ in range(4))
    assign_perm("assistant.use_assistantprofile", staff, to_user)
    assign_perm("assistant.use_assistantprofile", Group.objects.get(name="Staff"), to_role)
    assign_perm("assistant.use_assistantprofile", Group.objects.create(name="Elsewhere"), to_other_role)
    assert _both(staff, to_user)
    assert _both(staff, to_role)
    assert not _both(staff, to_other_role)
    assert not _both(staff, to_nobody)


def test_another_permission_on_the_profile_or_another_profiles_grant_does_not_count() -> None:
    staff = UserFactory.create(roles=["Staff"])
    profile, granted = AssistantProfileFactory.create(), AssistantProfileFactory.create(usable_by=[staff])
    assign_perm("assistant.view_assistantprofile", staff, profile)
    assert not _both(staff, profile)
    assert _both(staff, granted)


def test_an_inactive_profile_is_not_usable_even_when_granted() -> None:
    staff = UserFactory.create(roles=["Staff"])
    profile = AssistantProfileFactory.create(usable_by=["Staff"], is_active=False)
    assert not _both(staff, profile)


def test_the_global_permission_or_a_superuser_uses_every_active_profile() -> None:
    holder = UserFactory.create(roles=["Staff"])
    holder.user_permissions.add(Permission.objects.get(codename="use_assistantprofile"))
    root = UserFactory.create(roles=["Staff"], is_superuser=True)
    profile = AssistantProfileFactory.create()
    assert _both(holder, profile)
    assert _both(root, profile)


def test_nobody_may_use_one_without_the_assistant() -> None:
    outsider = UserFactory.create(roles=[])
    profile = AssistantProfileFactory.create(usable_by=[outsider])
    assert not _both(outsider, profile)
    inactive = UserFactory.create(roles=["Staff"], is_active=False)
    assert not _both(inactive, AssistantProfileFactory.create(usable_by=[inactive]))
