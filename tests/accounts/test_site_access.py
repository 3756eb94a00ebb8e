"""Site-admin access follows the Administrator role, on the Users page too, and for accounts made before."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db

STRONG_PASSWORD = "a-long-and-unusual-passphrase-42"


def _client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_administrator_made_on_the_users_page_can_open_the_site_admin(alice: Any) -> None:
    response = _client_for(alice).post(
        reverse("accounts:user_create"),
        {"username": "ops", "password1": STRONG_PASSWORD, "password2": STRONG_PASSWORD, "roles": ["Administrator"]},
    )
    assert response.status_code == 302
    ops = User.objects.get(username="ops")
    assert ops.is_staff and not ops.is_superuser
    assert _client_for(ops).get(reverse("admin:routing_catalogmodel_changelist")).status_code == 200
    event = AuditEvent.objects.get(action="user.site_access_changed", object_id=str(ops.pk))
    assert event.actor_username == "alice" and event.details == {
        "before": {"is_staff": False},
        "after": {"is_staff": True},
    }


def test_taking_the_role_away_on_the_users_page_takes_the_site_admin_away(alice: Any) -> None:
    ops = UserFactory.create(username="ops", roles=["Administrator", "Staff"])
    assert ops.is_staff

    response = _client_for(alice).post(
        reverse("accounts:user_edit", args=[ops.pk]), {"email": ops.email, "is_active": "on", "roles": ["Staff"]}
    )

    assert response.status_code == 302
    ops.refresh_from_db()
    assert not ops.is_staff
    assert _client_for(ops).get(reverse("admin:index")).status_code == 302  # to the admin's sign-in


def test_a_stale_site_access_flag_is_corrected_at_the_next_save(alice: Any) -> None:
    stale = UserFactory.create(username="stale", roles=["Staff"], is_staff=True)
    _client_for(alice).post(
        reverse("accounts:user_edit", args=[stale.pk]), {"email": stale.email, "is_active": "on", "roles": ["Staff"]}
    )
    stale.refresh_from_db()
    assert not stale.is_staff


def test_the_users_page_records_which_personal_fields_changed_but_not_their_values(alice: Any, sam: Any) -> None:
    _client_for(alice).post(
        reverse("accounts:user_edit", args=[sam.pk]),
        {"email": "sam.private@home.test", "first_name": "Samwise", "is_active": "", "roles": ["Staff"]},
    )
    event = AuditEvent.objects.get(action="user.updated", object_id=str(sam.pk))
    assert set(event.details["fields"]) == {"email", "first_name", "last_name", "is_active"}
    assert event.details["changes"] == {"is_active": [True, False]}
    assert "home.test" not in str(event.details) and "Samwise" not in str(event.details)


def test_an_administrator_cannot_change_a_superusers_account_on_the_users_page(alice: Any) -> None:
    root = UserFactory.create(username="root", is_staff=True, is_superuser=True)
    response = _client_for(alice).post(
        reverse("accounts:user_edit", args=[root.pk]), {"email": "x@taken.test", "is_active": "", "roles": []}
    )
    assert response.status_code == 403
    root.refresh_from_db()
    assert root.is_active and root.email != "x@taken.test"


def test_the_migration_brings_existing_accounts_in_line_and_demotes_the_demo_admin() -> None:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    migration = ("accounts", "0001_site_access_follows_role")
    MigrationExecutor(connection).migrate([("accounts", None)])
    demo_admin = User.objects.create_user("admin", "admin@demo.invalid", is_staff=True, is_superuser=True)
    operator = User.objects.create_user("operator", "ops@example.test", is_staff=True, is_superuser=True)
    administrator = User.objects.create_user("helen", "helen@example.test")
    administrator.groups.set(Group.objects.filter(name="Administrator"))
    former = User.objects.create_user("former", "former@example.test", is_staff=True)

    MigrationExecutor(connection).migrate([migration])

    flags = {user.username: (user.is_superuser, user.is_staff) for user in User.objects.all()}
    assert flags["admin"] == (False, False)  # no role given in this test: no site admin either
    assert flags["operator"] == (True, True)  # a real superuser stays one
    assert flags["helen"] == (False, True)
    assert flags["former"] == (False, False)
    assert AuditEvent.objects.filter(action="user.superuser_removed", object_id=str(demo_admin.pk)).exists()
    changed = set(AuditEvent.objects.filter(action="user.site_access_changed").values_list("object_id", flat=True))
    assert changed == {str(demo_admin.pk), str(administrator.pk), str(former.pk)}
    assert str(operator.pk) not in changed
