"""The Budgets screen: administrators set, change and delete budgets in the portal, each change audited."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from audit.models import AuditEvent
from portal.routing.models import Budget
from portal.routing.services import _exceeded_budgets

pytestmark = pytest.mark.django_db


def test_an_administrator_sets_a_role_budget_that_routing_then_applies(client: Any, alice: Any, sam: Any):
    client.force_login(alice)
    staff = Group.objects.get(name="Staff")
    response = client.post(
        reverse("routing:budgets"),
        {"role": staff.pk, "period": "day", "limit": "0.0001", "action": "refuse", "enabled": "on"},
    )
    assert response.status_code == 302
    budget = Budget.objects.get()
    assert (budget.role, budget.period, budget.limit, budget.action) == (staff, "day", Decimal("0.0001"), "refuse")
    event = AuditEvent.objects.get(action="routing.budget_created")
    assert event.actor_username == "alice" and event.object_id == str(budget.pk)
    assert event.details["after"] == {
        "role": "Staff", "user_id": None, "period": "day", "limit": "0.0001", "action": "refuse", "enabled": True,
    }  # fmt: skip
    page = client.get(reverse("routing:budgets")).content.decode()
    assert "role Staff" in page and "0.0001" in page  # never rounded to 0.00
    assert [state.budget.pk for state in _exceeded_budgets(sam)] == []  # nothing spent yet


def test_a_change_records_before_and_after_and_a_delete_is_audited(client: Any, alice: Any, sam: Any):
    budget = Budget.objects.create(user=sam, period="month", limit=Decimal("5"), action="downgrade")
    client.force_login(alice)
    form = client.get(reverse("routing:budget_edit", args=[budget.pk]))
    assert form.status_code == 200 and "Change this budget" in form.content.decode()
    response = client.post(
        reverse("routing:budget_edit", args=[budget.pk]),
        {"user": sam.pk, "period": "month", "limit": "7.5", "action": "downgrade"},  # enabled unticked: off
    )
    assert response.status_code == 302
    changed = AuditEvent.objects.get(action="routing.budget_changed")
    assert changed.details["before"]["limit"] == "5.0000" and changed.details["after"]["limit"] == "7.5"
    assert changed.details["before"]["enabled"] is True and changed.details["after"]["enabled"] is False
    assert "sam" not in str(changed.details)  # the person is named by id only
    assert client.post(reverse("routing:budget_delete", args=[budget.pk])).status_code == 302
    assert not Budget.objects.exists()
    assert AuditEvent.objects.get(action="routing.budget_deleted").details["before"]["user_id"] == sam.pk


def test_a_budget_for_both_a_role_and_a_person_is_refused_with_its_reason(client: Any, alice: Any, sam: Any):
    client.force_login(alice)
    staff = Group.objects.get(name="Staff")
    response = client.post(
        reverse("routing:budgets"),
        {"role": staff.pk, "user": sam.pk, "period": "day", "limit": "1", "action": "refuse"},
    )
    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode()
    assert not Budget.objects.exists() and not AuditEvent.objects.filter(action__startswith="routing.budget_").exists()
    negative = client.post(reverse("routing:budgets"), {"role": staff.pk, "period": "day", "limit": "-1"})
    assert negative.status_code == 400 and not Budget.objects.exists()


def test_staff_can_neither_see_nor_change_budgets(client: Any, sam: Any):
    budget = Budget.objects.create(user=sam, period="month", limit=Decimal("5"))
    client.force_login(sam)
    assert client.get(reverse("routing:budgets")).status_code == 403
    assert client.post(reverse("routing:budgets"), {"user": sam.pk, "period": "day", "limit": "100"}).status_code == 403
    assert client.post(reverse("routing:budget_edit", args=[budget.pk]), {"limit": "100"}).status_code == 403
    assert client.post(reverse("routing:budget_delete", args=[budget.pk])).status_code == 403
    budget.refresh_from_db()
    assert budget.limit == Decimal("5") and Budget.objects.count() == 1
