"""A user's roles are read once per user object, and forgotten when they change through it."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, Group, User

from audit.services import actor_roles
from governance.gate import user_role_names
from portal.core.memberships import forget_roles, user_role_ids, user_roles
from portal.routing.selectors import role_names

pytestmark = pytest.mark.django_db


def test_the_roles_are_read_once_for_every_reader(django_assert_num_queries: Any) -> None:
    user = User.objects.create(username="many-readers")
    staff, auditor = Group.objects.create(name="Zeta role"), Group.objects.create(name="Alpha role")
    user.groups.add(staff, auditor)
    with django_assert_num_queries(1):
        assert user_role_names(user) == ["Alpha role", "Zeta role"]
        assert role_names(user) == ["Alpha role", "Zeta role"]
        assert actor_roles(user) == ["Alpha role", "Zeta role"]
        assert user_role_ids(user) == [auditor.pk, staff.pk]


def test_a_role_added_or_removed_through_the_user_is_seen_at_once() -> None:
    user = User.objects.create(username="changing")
    role = Group.objects.create(name="Changing role")
    assert user_roles(user) == ()
    user.groups.add(role)
    assert user_role_names(user) == ["Changing role"]
    user.groups.remove(role)
    assert user_role_names(user) == []
    user.groups.set([role])
    assert user_role_names(user) == ["Changing role"]
    user.groups.clear()
    assert user_role_names(user) == []


def test_forget_roles_reads_them_again() -> None:
    user = User.objects.create(username="forgetting")
    assert user_role_names(user) == []
    Group.objects.create(name="Added elsewhere").user_set.add(user)  # another object: this one still keeps []
    assert user_role_names(user) == []
    forget_roles(user)
    assert user_role_names(user) == ["Added elsewhere"]
    assert user_role_names(User.objects.get(pk=user.pk)) == ["Added elsewhere"]  # a new request's user


def test_nobody_signed_in_has_no_roles(django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(0):
        assert user_role_names(AnonymousUser()) == []
        assert actor_roles(None) == []
