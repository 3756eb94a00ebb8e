"""Who may see a restricted customer is granted in the site admin: audited, and with no personal data
on that screen or in the trail."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from portal.customers.selectors import customers_visible_to
from tests.customers.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def _client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_granting_a_restricted_customer_to_a_user_is_audited_without_personal_data(alice: Any, sam: Any) -> None:
    customer = CustomerFactory.create(name="Imogen Whitlock", restricted=True, emails=["imogen@whitlock.test"])
    assert customer not in customers_visible_to(user=sam)
    url = reverse("admin:customers_customer_permissions_manage_user", args=[customer.pk, sam.pk])

    assert _client_for(alice).post(url, {"permissions": ["view_customer"]}).status_code == 302

    assert customer in customers_visible_to(user=type(sam).objects.get(pk=sam.pk))
    event = AuditEvent.objects.get(action="customers.customer_access_changed")
    assert event.object_type == "customers.customer" and event.object_id == str(customer.pk)
    assert (event.details["before"], event.details["after"]) == ([], ["view_customer"])
    assert event.details["user"] == "sam"
    assert "Imogen" not in str(event.details) and "whitlock" not in str(event.details).lower()


def test_the_customer_screen_shows_no_contact_details_and_saving_it_changes_nothing(alice: Any) -> None:
    customer = CustomerFactory.create(restricted=True, emails=["imogen@whitlock.test"], notes="Prefers calls after six")
    client = _client_for(alice)
    url = reverse("admin:customers_customer_change", args=[customer.pk])

    page = client.get(url).content.decode()
    assert customer.name in page and "imogen@whitlock.test" not in page and "Prefers calls" not in page
    assert client.post(url, {"name": "Someone else", "restricted": ""}).status_code == 302
    customer.refresh_from_db()
    assert customer.name != "Someone else" and customer.restricted is True
    assert not AuditEvent.objects.filter(action="customers.customer_changed").exists()
