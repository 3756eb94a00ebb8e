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
