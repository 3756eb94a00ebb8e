"""Users, roles and sign-in records in the site admin: every change audited, site access following the
Administrator role, and an Administrator who cannot make superusers or take one over."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from portal.accounts.services import ERROR_SELF_LOCKOUT
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-brand-new-and-long-passphrase-17"


def _client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def root() -> Any:
    return UserFactory.create(username="root", is_staff=True, is_superuser=True)


def _user_form(user: User, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on" if user.is_active else "",
        "groups": [str(pk) for pk in user.groups.values_list("pk", flat=True)],
        "user_permissions": [str(pk) for pk in user.user_permissions.values_list("pk", flat=True)],
    }
    if user.is_superuser:
        data["is_superuser"] = "on"
    data.update(changes)
    return {key: value for key, value in data.items() if value not in ("", None)}


def _change_user(client: Client, user: User, **changes: Any) -> Any:
    return client.post(reverse("admin:auth_user_change", args=[user.pk]), _user_form(user, **changes))


def _role_ids(*names: str) -> list[str]:
    return [str(pk) for pk in Group.objects.filter(name__in=names).values_list("pk", flat=True)]


def test_making_a_user_superuser_is_audited_and_brings_site_access(root: Any, sam: Any) -> None:
    response = _change_user(_client_for(root), sam, is_superuser="on")

    assert response.status_code == 302, response.content.decode()[:3000]
    sam.refresh_from_db()
    assert sam.is_superuser and sam.is_staff
    event = AuditEvent.objects.get(action="auth.user_changed", object_id=str(sam.pk))
    assert event.actor_username == "root"
    assert event.details["before"]["is_superuser"] is False and event.details["after"]["is_superuser"] is True
    assert event.details["after"]["is_staff"] is True
    assert AuditEvent.objects.filter(action="user.site_access_changed", object_id=str(sam.pk)).exists()


def test_an_administrator_cannot_make_a_superuser_or_grant_single_permissions(alice: Any, sam: Any) -> None:
    permission = Permission.objects.get(codename="manage_policies")
    response = _change_user(_client_for(alice), sam, is_superuser="on", user_permissions=[str(permission.pk)])

    assert response.status_code == 302
    sam.refresh_from_db()
    assert not sam.is_superuser and not sam.user_permissions.exists()
    assert not AuditEvent.objects.filter(action="auth.user_changed").exists()  # nothing changed


def test_an_administrator_cannot_change_a_superuser_or_their_password(alice: Any, root: Any) -> None:
    client = _client_for(alice)
    assert client.get(reverse("admin:auth_user_change", args=[root.pk])).status_code == 200  # to view
    assert _change_user(client, root, email="taken@over.test").status_code == 403
    password_url = reverse("admin:auth_user_password_change", args=[root.pk])
    data = {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"}
    assert client.post(password_url, data).status_code == 403
    root.refresh_from_db()
    assert root.email != "taken@over.test" and not root.check_password(NEW_PASSWORD)


def test_the_administrator_role_given_in_the_admin_brings_the_site_admin_and_taking_it_removes_it(
    alice: Any, sam: Any
) -> None:
    client = _client_for(alice)
    assert _client_for(sam).get(reverse("admin:index")).status_code == 302  # to the admin's sign-in

    assert _change_user(client, sam, groups=_role_ids("Administrator", "Staff")).status_code == 302
    sam.refresh_from_db()
    assert sam.is_staff
    assert _client_for(sam).get(reverse("admin:index")).status_code == 200
    event = AuditEvent.objects.filter(action="auth.user_changed", object_id=str(sam.pk)).latest("seq")
    assert event.details["before"] == {"groups": ["Staff"], "is_staff": False}
    assert event.details["after"] == {"groups": ["Administrator", "Staff"], "is_staff": True}
    access = AuditEvent.objects.filter(action="user.site_access_changed", object_id=str(sam.pk)).latest("seq")
    assert access.actor_username == "alice" and access.details["after"] == {"is_staff": True}

    assert _change_user(client, sam, groups=_role_ids("Staff")).status_code == 302
    sam.refresh_from_db()
    assert not sam.is_staff
    assert _client_for(sam).get(reverse("admin:index")).status_code == 302


def test_an_administrator_cannot_drop_their_own_role_in_the_admin(alice: Any) -> None:
    response = _change_user(_client_for(alice), alice, groups=_role_ids("Staff"))
    assert response.status_code == 200
    assert ERROR_SELF_LOCKOUT in response.content.decode()
    alice.refresh_from_db()
    assert alice.is_staff and alice.groups.filter(name="Administrator").exists()


def test_a_user_added_in_the_admin_is_audited_without_the_password(alice: Any) -> None:
    response = _client_for(alice).post(
        reverse("admin:auth_user_add"),
        {"username": "newcomer", "usable_password": "true", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    user = User.objects.get(username="newcomer")
    event = AuditEvent.objects.get(action="auth.user_created")
    assert event.object_id == str(user.pk) and event.details["after"]["is_staff"] is False
    assert "password" in event.details["fields"]
    assert NEW_PASSWORD not in str(event.details) and user.password not in str(event.details)


def test_a_password_changed_in_the_admin_is_audited_as_changed_and_never_copied(root: Any, sam: Any) -> None:
    url = reverse("admin:auth_user_password_change", args=[sam.pk])
    data = {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"}

    assert _client_for(root).post(url, data).status_code == 302

    sam.refresh_from_db()
    assert sam.check_password(NEW_PASSWORD)
    event = AuditEvent.objects.get(action="auth.user_changed", object_id=str(sam.pk))
    assert event.details["fields"] == ["password"]
    assert sam.password not in str(event.details) and NEW_PASSWORD not in str(event.details)


def test_a_failing_audit_rolls_a_password_change_back(root: Any, sam: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**kwargs: Any) -> None:
        raise RuntimeError("audit down")

    monkeypatch.setattr("audit.admin.audit", refuse)
    url = reverse("admin:auth_user_password_change", args=[sam.pk])
    with pytest.raises(RuntimeError):
        _client_for(root).post(url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"})
    sam.refresh_from_db()
    assert not sam.check_password(NEW_PASSWORD)


def test_a_permission_added_to_a_role_is_audited_by_name(root: Any) -> None:
    auditors = Group.objects.get(name="Auditor")
    before = sorted(f"{p.content_type.app_label}.{p.codename}" for p in auditors.permissions.all())
    added = Permission.objects.get(content_type__app_label="governance", codename="manage_policies")
    permissions = [str(pk) for pk in auditors.permissions.values_list("pk", flat=True)] + [str(added.pk)]

    response = _client_for(root).post(
        reverse("admin:auth_group_change", args=[auditors.pk]), {"name": auditors.name, "permissions": permissions}
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    assert auditors.permissions.filter(pk=added.pk).exists()
    event = AuditEvent.objects.get(action="auth.group_changed")
    assert event.details["fields"] == ["permissions"] and event.details["object"] == "Auditor"
    assert event.details["before"]["permissions"] == before
    assert event.details["after"]["permissions"] == sorted([*before, "governance.manage_policies"])


def test_an_administrator_sees_the_roles_but_cannot_change_their_permissions(alice: Any) -> None:
    auditors = Group.objects.get(name="Auditor")
    client = _client_for(alice)
    assert client.get(reverse("admin:auth_group_change", args=[auditors.pk])).status_code == 200
    assert client.post(reverse("admin:auth_group_change", args=[auditors.pk]), {"name": "x"}).status_code == 403


def test_lifting_a_lockout_in_the_admin_is_audited_without_the_username_or_address(root: Any) -> None:
    from axes.models import AccessAttempt

    attempt = AccessAttempt.objects.create(
        username="victim-name", ip_address="203.0.113.9", user_agent="ua", failures_since_start=5,
        attempt_time=timezone.now(), get_data="", post_data="", http_accept="", path_info="/login/",
    )  # fmt: skip

    response = _client_for(root).post(reverse("admin:axes_accessattempt_delete", args=[attempt.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert not AccessAttempt.objects.exists()
    event = AuditEvent.objects.get(action="axes.accessattempt_deleted")
    assert event.details["before"]["failures_since_start"] == 5
    assert "victim-name" not in str(event.details) and "203.0.113.9" not in str(event.details)


def test_an_admin_action_of_its_own_is_audited(root: Any) -> None:
    """Axes' "clean up expired attempts", run the way the changelist runs an action.

    (Called directly: axes reads `request.axes_attempt_time`, which only its sign-in handling sets, so
    through the client the action fails inside axes before anything is written.)
    """
    from axes.models import AccessAttempt
    from django.contrib import admin
    from django.contrib.messages.storage.cookie import CookieStorage
    from django.test import RequestFactory

    attempt = AccessAttempt.objects.create(
        username="someone", ip_address="203.0.113.9", user_agent="ua", failures_since_start=1,
        attempt_time=timezone.now(), get_data="", post_data="", http_accept="", path_info="/login/",
    )  # fmt: skip
    request = RequestFactory().post("/admin/axes/accessattempt/")
    request.user = root
    request.axes_attempt_time = timezone.now()  # type: ignore[attr-defined]
    request._messages = CookieStorage(request)  # type: ignore[attr-defined]
    model_admin = admin.site._registry[AccessAttempt]
    action = model_admin.get_actions(request)["cleanup_expired_attempts"]
    assert action is not None
    function = action[0]

    function(model_admin, request, AccessAttempt.objects.filter(pk=attempt.pk))

    event = AuditEvent.objects.get(action="axes.accessattempt_action_run")
    assert event.actor_username == "root" and event.details["action"] == "cleanup_expired_attempts"
    assert (event.details["count"], event.details["ids"]) == (1, [str(attempt.pk)])


EXPECTED_ADMINISTRATOR_SCREENS = {
    "auth.user", "auth.group",
    "knowledge.knowledgebase", "knowledge.document",
    "routing.catalogmodel", "routing.tasktier", "routing.budget", "routing.usage",
    "assistant.assistantprofile",
    "customers.customer",
}  # fmt: skip


def test_the_administrator_gets_exactly_its_admin_screens(alice: Any) -> None:
    response = _client_for(alice).get(reverse("admin:index"))
    assert response.status_code == 200
    screens = {
        f"{app['app_label']}.{model['object_name'].lower()}"
        for app in response.context["app_list"]
        for model in app["models"]
    }
    assert screens == EXPECTED_ADMINISTRATOR_SCREENS


@pytest.mark.parametrize("person", ["olivia", "audrey", "sam", "oscar"])
def test_other_roles_have_no_site_admin(person: str, request: pytest.FixtureRequest) -> None:
    client = _client_for(request.getfixturevalue(person))
    assert client.get(reverse("admin:index")).status_code == 302  # to the admin's own sign-in
    assert client.get(reverse("admin:routing_catalogmodel_changelist")).status_code == 302


def test_usage_is_read_only_for_the_administrator(alice: Any) -> None:
    from tests.routing.factories import UsageFactory

    usage = UsageFactory.create(
        username="sam", model_key="model:1", model_name="Fake", provider="openai", outcome="success"
    )
    client = _client_for(alice)
    assert client.get(reverse("admin:routing_usage_changelist")).status_code == 200
    assert client.post(reverse("admin:routing_usage_delete", args=[usage.pk]), {"post": "yes"}).status_code == 403
