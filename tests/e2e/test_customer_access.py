"""The owner of a restricted customer gives a colleague access in the browser (plain form post, then the list),
then takes it back after confirming."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from audit.models import AuditEvent
from portal.customers.selectors import customers_visible_to
from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.customers.factories import CustomerFactory
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_owner_grants_a_colleague_access_and_sees_the_grant_listed(page: Any) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    tess = UserFactory.create(username="tess", first_name="Tess", last_name="Owner", roles=["Staff"])
    sara = UserFactory.create(username="sara", first_name="Sara", last_name="Colleague", roles=["Staff"])
    customer = CustomerFactory.create(name="Imogen Whitlock", restricted=True, owner=tess)
    sign_in(page, "tess", DEFAULT_PASSWORD)
    page.wait_for_url("**/")

    page.goto(customer.get_absolute_url())
    page.get_by_role("link", name="Access", exact=True).click()
    expect(page.get_by_role("heading", name="Who may see “Imogen Whitlock”")).to_be_visible()
    grants = page.get_by_role("table", name="Who may see this customer")
    expect(grants).to_contain_text("Tess Owner")
    expect(grants).not_to_contain_text("Sara Colleague")

    page.get_by_label("or user (username)").fill("sara")
    page.get_by_role("button", name="Apply").click()

    expect(page.get_by_text("Access granted to sara.")).to_be_visible()
    expect(grants.get_by_role("row", name="Sara Colleague")).to_be_visible()
    expect(grants.get_by_role("button", name="Revoke from sara")).to_be_visible()
    assert customer in customers_visible_to(user=type(sara).objects.get(pk=sara.pk))
    event = AuditEvent.objects.get(action="customers.access_granted")
    assert (event.details["customer_id"], event.details["user_id"]) == (customer.pk, sara.pk)

    # Revoke asks first (data-confirm): dismissed, nothing is posted; accepted, the grant goes.
    questions: list[str] = []

    def dismiss(dialog: Any) -> None:
        questions.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    grants.get_by_role("button", name="Revoke from sara").click()
    assert questions == ["Revoke sara's access to this customer?"]
    expect(grants.get_by_role("row", name="Sara Colleague")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    grants.get_by_role("button", name="Revoke from sara").click()
    expect(page.get_by_text("Access revoked from sara.")).to_be_visible()
    expect(grants).not_to_contain_text("Sara Colleague")
    assert AuditEvent.objects.filter(action="customers.access_revoked").count() == 1
