from __future__ import annotations

from typing import Any

import pytest

from portal.assistant.demo import demo_profiles_ensure
from portal.assistant.selectors import profiles_for_user

pytestmark = pytest.mark.django_db


def test_the_demo_has_a_handbook_helper_for_staff_and_an_analyst_for_administrators(sam: Any, alice: Any):
    created = demo_profiles_ensure()
    assert demo_profiles_ensure() == []  # once only

    assert {profile.name for profile in created} == {"Handbook helper", "Analyst"}
    assert [profile.name for profile in profiles_for_user(user=sam)] == ["Handbook helper"]
    assert [profile.name for profile in profiles_for_user(user=alice)] == ["Analyst", "Handbook helper"]
    analyst = next(profile for profile in created if profile.name == "Analyst")
    assert analyst.task_type == "analyze"
