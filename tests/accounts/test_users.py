from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from portal.accounts.services import ERROR_SELF_LOCKOUT

pytestmark = pytest.mark.django_db

STRONG_PASSWORD = "a-long-and-unusual-passphrase-42"


def _client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("person", ["olivia", "audrey", "sam", "oscar"])
def test_only_administrators_see_the_user_screens(person: str, request: pytest.FixtureRequest, alice: Any) -> None:
    client = _client_for(request.getfixturevalue(person))
    assert client.get(reverse("accounts:user_list")).status_code == 403
    assert client.get(reverse("accounts:user_create")).status_code == 403
    assert client.get(reverse("accounts:user_edit", args=[alice.pk])).status_code == 403


def test_an_administrator_lists_and_filters_users(alice: Any, sam: Any, audrey: Any) -> None:
    client = _client_for(alice)
    page = client.get(reverse("accounts:user_list")).content.decode()
    assert "sam" in page and "audrey" in page
    fragment = client.get(reverse("accounts:user_list"), {"role": "Auditor"}, HTTP_HX_REQUEST="true").content.decode()
    assert "audrey" in fragment and ">sam<" not in fragment
    assert "<html" not in fragment  # htmx gets only the table


def test_an_unknown_user_is_a_404(alice: Any) -> None:
    assert _client_for(alice).get(reverse("accounts:user_edit", args=[999999])).status_code == 404


def test_an_administrator_creates_a_user_with_roles(alice: Any) -> None:
    response = _client_for(alice).post(
        reverse("accounts:user_create"),
        {"username": "newbie", "password1": STRONG_PASSWORD, "password2": STRONG_PASSWORD, "roles": ["Staff"]},
    )
    assert response.status_code == 302
    user = User.objects.get(username="newbie")
    assert list(user.groups.values_list("name", flat=True)) == ["Staff"]
    assert user.check_password(STRONG_PASSWORD)
    event = AuditEvent.objects.filter(action="user.created").latest("seq")
    assert event.actor_id == alice.pk and event.details["roles"] == ["Staff"]
    assert STRONG_PASSWORD not in str(event.details)


def test_bad_input_is_shown_with_a_400(alice: Any) -> None:
    response = _client_for(alice).post(
        reverse("accounts:user_create"), {"username": "x", "password1": "short", "password2": "other"}
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "The two passwords differ." in body
    assert not User.objects.filter(username="x").exists()


def test_a_role_change_is_audited_with_before_and_after(alice: Any, sam: Any) -> None:
    response = _client_for(alice).post(
        reverse("accounts:user_edit", args=[sam.pk]),
        {"email": sam.email, "is_active": "on", "roles": ["Staff", "Auditor"]},
    )
    assert response.status_code == 302
    event = AuditEvent.objects.filter(action="user.roles_changed").latest("seq")
    assert event.object_id == str(sam.pk)
    assert event.details["before"] == ["Staff"]
    assert event.details["after"] == ["Auditor", "Staff"]
    assert event.details["added"] == ["Auditor"]


def test_an_administrator_cannot_lock_themselves_out(alice: Any) -> None:
    response = _client_for(alice).post(
        reverse("accounts:user_edit", args=[alice.pk]), {"email": alice.email, "is_active": "on", "roles": ["Staff"]}
    )
    assert response.status_code == 400
    assert ERROR_SELF_LOCKOUT in response.content.decode()
    assert alice.groups.filter(name="Administrator").exists()


def test_navigation_shows_each_role_what_it_may_use(alice: Any, sam: Any) -> None:
    admin_page = _client_for(alice).get(reverse("home")).content.decode()
    staff_page = _client_for(sam).get(reverse("home")).content.decode()
    assert reverse("accounts:user_list") in admin_page
    assert reverse("accounts:user_list") not in staff_page


def test_every_navigation_link_works_for_every_role(alice: Any, olivia: Any, audrey: Any, sam: Any, oscar: Any) -> None:
    from portal.core.navigation import navigation_for

    for person in (alice, olivia, audrey, sam, oscar):
        client = _client_for(person)
        links = navigation_for(person)
        assert links, person.username
        for link in links:
            response = client.get(link.url)
            assert response.status_code == 200, (person.username, link.url)
            assert response.resolver_match.url_name == link.url_name.split(":")[-1], (person.username, link.url)
            assert link.label in response.content.decode()  # the navigation shows it, on its own page too


def test_the_roles_exist_with_descriptions_and_permissions() -> None:
    from django.contrib.auth.models import Group

    from governance.roles import ROLE_PERMISSIONS

    for name, wanted in ROLE_PERMISSIONS.items():
        group = Group.objects.get(name=name)
        assert group.role.description
        have = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}
        assert have == wanted, name
