from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from portal.routing.selectors import usage_report
from tests.routing.factories import UsageFactory

pytestmark = pytest.mark.django_db


def test_the_report_groups_spend_by_user_role_model_and_day(alice: Any, sam: Any):
    UsageFactory.create(user=sam, username="sam", roles=["Staff"], model_name="A", cost=Decimal("1.00"))
    UsageFactory.create(
        user=alice, username="alice", roles=["Administrator", "Staff"], model_name="B", cost=Decimal("2.00")
    )
    UsageFactory.create(user=None, username="", roles=[], model_name="A", cost=Decimal("0.50"), outcome="error")
    UsageFactory.create(username="old", cost=Decimal("9.00"), created_at=timezone.now() - timedelta(days=40))

    report = usage_report(user=alice, days=30)

    assert report.totals["cost"] == Decimal("3.50") and report.totals["calls"] == 3 and report.totals["errors"] == 1
    assert [(row["username"], row["cost"]) for row in report.by_user] == [
        ("alice", Decimal("2.00")),
        ("sam", Decimal("1.00")),
        ("", Decimal("0.50")),
    ]
    assert [(row["role"], row["calls"], row["cost"]) for row in report.by_role] == [
        ("Staff", 2, Decimal("3.00")),
        ("Administrator", 1, Decimal("2.00")),
        ("(no role)", 1, Decimal("0.50")),
    ]
    assert [(row["model_name"], row["calls"], row["errors"]) for row in report.by_model] == [("B", 1, 0), ("A", 2, 1)]
    assert len(report.by_day) == 30 and report.by_day[-1]["cost"] == Decimal("3.50")
    assert all(row["calls"] == 0 for row in report.by_day[:-1])


def test_the_report_is_for_administrators_only(sam: Any):
    with pytest.raises(PermissionDenied):
        usage_report(user=sam)
