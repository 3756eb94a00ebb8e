from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from portal.accounts.backends import PasswordBackend
from tests.accounts.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db


def test_signing_in_is_audited(client: Client, sam: Any) -> None:
    response = client.post(reverse("login"), {"username": "sam", "password": DEFAULT_PASSWORD})
    assert response.status_code == 302
    event = AuditEvent.objects.filter(action="auth.login").latest("seq")
    assert event.actor_id == sam.pk
    assert event.actor_roles == ["Staff"]
    assert event.details["ip"] == "127.0.0.1"


def test_a_wrong_password_is_refused_and_audited_without_the_password(client: Client, sam: Any) -> None:
    response = client.post(reverse("login"), {"username": "sam", "password": "not-the-password"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    event = AuditEvent.objects.filter(action="auth.login_failed").latest("seq")
    assert event.outcome == "failure"
    assert event.details["username"] == "sam"
    assert "not-the-password" not in str(event.details)


def test_signing_out_is_audited_and_needs_a_post(client: Client, sam: Any) -> None:
    client.force_login(sam)
    assert client.get(reverse("logout")).status_code == 405
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="auth.logout", actor_id=sam.pk).exists()


def test_repeated_failures_lock_the_account_out(client: Client, sam: Any, settings: Any) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": "sam", "password": "wrong"})
    response = client.post(reverse("login"), {"username": "sam", "password": DEFAULT_PASSWORD})
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_pages_need_a_signed_in_user(client: Client) -> None:
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_login_form_is_csrf_protected(sam: Any) -> None:
    strict = Client(enforce_csrf_checks=True)
    response = strict.post(reverse("login"), {"username": "sam", "password": DEFAULT_PASSWORD})
    assert response.status_code == 403


def test_weak_passwords_are_rejected_by_the_validators(alice: Any) -> None:
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        validate_password("short1")
    with pytest.raises(ValidationError):
        validate_password("123456789012")


def test_a_users_own_and_role_permissions_are_read_in_one_statement(sam: Any, django_assert_num_queries: Any) -> None:
    from django.contrib.auth.backends import ModelBackend
    from django.contrib.auth.models import Permission, User

    sam.user_permissions.add(Permission.objects.get(codename="view_user", content_type__app_label="auth"))
    sam = User.objects.get(pk=sam.pk)
    with django_assert_num_queries(1):
        permissions = PasswordBackend().get_all_permissions(sam)
        assert sam.has_perm("auth.view_user") and sam.has_perm("governance.use_assistant")
    assert permissions == ModelBackend().get_all_permissions(User.objects.get(pk=sam.pk))
    assert "auth.view_user" in permissions
