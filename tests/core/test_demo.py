from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from portal.core.demo import DEMO_PEOPLE, demo_organisation_ensure

pytestmark = pytest.mark.django_db


def test_the_demo_organisation_has_one_user_per_role_and_is_created_once(tmp_path: Path, settings: Any) -> None:
    settings.VAR_DIR = tmp_path
    first = demo_organisation_ensure()
    second = demo_organisation_ensure()
    assert first == second
    assert set(first) == {person.username for person in DEMO_PEOPLE}
    roles = {
        name for user in User.objects.filter(username__in=first) for name in user.groups.values_list("name", flat=True)
    }
    assert roles == {"Administrator", "Governance officer", "Auditor", "Staff"}
    credentials_file = tmp_path / "demo_credentials.json"
    assert stat.S_IMODE(credentials_file.stat().st_mode) == 0o600
    assert User.objects.get(username="staff").check_password(first["staff"])


def test_the_demo_administrator_has_the_site_admin_but_no_superuser_power(tmp_path: Path, settings: Any) -> None:
    """Role separation: the Administrator runs the portal; the governance screens are the officer's."""
    from django.test import Client
    from django.urls import reverse

    from knowledge.demo import DEMO_KNOWLEDGE_BASE
    from knowledge.models import KnowledgeBase

    settings.VAR_DIR = tmp_path
    demo_organisation_ensure()
    assert not User.objects.filter(is_superuser=True).exists()
    administrator = User.objects.get(username="admin")
    assert administrator.is_staff
    client = Client()
    client.force_login(administrator)
    handbook = KnowledgeBase.objects.get(name=DEMO_KNOWLEDGE_BASE)
    for name, args in (
        ("admin:routing_catalogmodel_changelist", []),
        ("admin:routing_budget_add", []),
        ("admin:assistant_assistantprofile_changelist", []),
        ("admin:knowledge_knowledgebase_permissions", [handbook.pk]),
    ):
        assert client.get(reverse(name, args=args)).status_code == 200, name
    for name in ("governance:term_lists", "governance:policy_edit", "governance:simulator"):
        assert client.get(reverse(name)).status_code == 403, name
    term_list = {"name": "Suppliers", "data_class": "CUSTOMER_FIELD", "description": "", "terms": "Acme"}
    assert client.post(reverse("governance:term_lists"), term_list).status_code == 403
    assert client.post(reverse("governance:policy_edit"), {"action": "discard"}).status_code == 403
    assert client.post(reverse("governance:simulator"), {"text": "hello"}).status_code == 403

    officer = Client()
    officer.force_login(User.objects.get(username="officer"))
    for name in ("governance:term_lists", "governance:policy_edit", "governance:simulator"):
        assert officer.get(reverse(name)).status_code == 200, name
    assert officer.get(reverse("admin:index")).status_code == 302  # no site admin for the officer
