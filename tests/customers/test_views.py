from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from guardian.shortcuts import assign_perm

from audit.models import AuditEvent
from portal.customers.models import Customer, Interaction
from portal.customers.validation import ERROR_EMAIL
from tests.customers.factories import CustomerFactory, InteractionFactory

pytestmark = pytest.mark.django_db


def _client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_staff_list_and_search_customers_live(sam: Any) -> None:
    CustomerFactory.create(name="Elodie Durand", organisation="Durand Bakery")
    CustomerFactory.create(name="Marcus Webb", organisation="Webb Logistics")
    client = _client_for(sam)
    page = client.get(reverse("customers:customer_list")).content.decode()
    assert "Elodie Durand" in page and "Marcus Webb" in page
    fragment = client.get(reverse("customers:customer_list"), {"q": "bakery"}, HTTP_HX_REQUEST="true").content.decode()
    assert "Elodie Durand" in fragment and "Marcus Webb" not in fragment
    assert "<html" not in fragment
    event = AuditEvent.objects.filter(action="customers.customers_listed").latest("seq")
    assert event.details["search"] is True and len(event.details["customer_ids"]) == 1


def test_search_finds_customers_by_email_and_phone(sam: Any) -> None:
    CustomerFactory.create(name="Elodie Durand", emails=["elodie@durand.example"], phones=["+33 1 42 68 53 00"])
    CustomerFactory.create(name="Marcus Webb")
    client = _client_for(sam)
    for query in ("durand.example", "42 68 53"):
        body = client.get(reverse("customers:customer_list"), {"q": query}).content.decode()
        assert "Elodie Durand" in body and "Marcus Webb" not in body, query


@pytest.mark.parametrize("person", ["audrey", "oscar"])
def test_roles_without_customer_access_get_403(person: str, request: pytest.FixtureRequest) -> None:
    customer = CustomerFactory.create()
    client = _client_for(request.getfixturevalue(person))
    assert client.get(reverse("customers:customer_list")).status_code == 403
    assert client.get(reverse("customers:customer_detail", args=[customer.pk])).status_code == 403
    assert client.get(reverse("customers:customer_create")).status_code == 403


def test_the_detail_shows_the_timeline_newest_first_and_audits_the_read(sam: Any) -> None:
    customer = CustomerFactory.create(name="Elodie Durand")
    InteractionFactory.create(customer=customer, summary="Asked about the spring order")
    InteractionFactory.create(customer=customer, summary="Confirmed the delivery date")
    response = _client_for(sam).get(reverse("customers:customer_detail", args=[customer.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert body.index("Confirmed the delivery date") < body.index("Asked about the spring order")
    event = AuditEvent.objects.filter(action="customers.customer_viewed").latest("seq")
    assert event.object_id == str(customer.pk) and event.actor_id == sam.pk
    assert event.details["purpose"] == "page"


def test_a_restricted_record_is_a_404_unless_owned_granted_or_seen_by_all(sam: Any, alice: Any) -> None:
    hidden = CustomerFactory.create(restricted=True)
    url = reverse("customers:customer_detail", args=[hidden.pk])
    client = _client_for(sam)
    assert client.get(url).status_code == 404
    assert "Customer" not in client.get(reverse("customers:customer_list")).content.decode().split("<tbody>")[1]
    assign_perm("customers.view_customer", sam, hidden)
    assert client.get(url).status_code == 200
    owned = CustomerFactory.create(restricted=True, owner=sam)
    assert client.get(reverse("customers:customer_detail", args=[owned.pk])).status_code == 200
    assert (
        _client_for(alice)
        .get(reverse("customers:customer_detail", args=[CustomerFactory.create(restricted=True).pk]))
        .status_code
        == 200
    )


def test_a_restricted_record_can_be_shared_with_a_role(sam: Any) -> None:
    from django.contrib.auth.models import Group

    hidden = CustomerFactory.create(restricted=True)
    url = reverse("customers:customer_detail", args=[hidden.pk])
    assert _client_for(sam).get(url).status_code == 404  # before the grant: not there at all
    assign_perm("customers.view_customer", Group.objects.get(name="Staff"), hidden)
    response = _client_for(sam).get(url)
    assert response.status_code == 200 and response.context["customer"] == hidden


def test_an_unknown_customer_is_a_404(sam: Any) -> None:
    assert _client_for(sam).get(reverse("customers:customer_detail", args=[999999])).status_code == 404


def test_staff_add_a_customer_and_bad_input_is_a_400(sam: Any) -> None:
    client = _client_for(sam)
    bad = client.post(
        reverse("customers:customer_create"), {"name": "Nadia Okafor", "emails": "not-an-address", "tier": "standard"}
    )
    assert bad.status_code == 400
    assert ERROR_EMAIL.format(value="not-an-address").replace("'", "&#x27;") in bad.content.decode()
    assert not Customer.objects.exists()
    good = client.post(
        reverse("customers:customer_create"),
        {
            "name": "Nadia Okafor",
            "emails": "nadia@okafor.example\nn.okafor@okafor.example",
            "phones": "+44 161 496 0000",
            "account_numbers": "GB82 WEST 1234 5698 7654 32",
            "tier": "priority",
        },
    )
    customer = Customer.objects.get()
    assert good.status_code == 302 and good["Location"] == customer.get_absolute_url()
    assert customer.emails == ["nadia@okafor.example", "n.okafor@okafor.example"]
    assert customer.account_numbers == ["GB82 WEST 1234 5698 7654 32"]
    event = AuditEvent.objects.filter(action="customers.customer_created").latest("seq")
    assert "nadia" not in str(event.details).lower()  # the trail names fields, not values


def test_an_invalid_iban_is_refused(sam: Any) -> None:
    response = _client_for(sam).post(
        reverse("customers:customer_create"),
        {"name": "X Y", "account_numbers": "GB00 WEST 1234 5698 7654 32", "tier": "standard"},
    )
    assert response.status_code == 400
    assert "check digits" in response.content.decode()


def test_staff_edit_a_customer_and_the_change_is_audited_by_field(sam: Any) -> None:
    customer = CustomerFactory.create(name="Elodie Durand", tier="standard")
    response = _client_for(sam).post(
        reverse("customers:customer_edit", args=[customer.pk]),
        {
            "name": "Elodie Durand",
            "organisation": customer.organisation,
            "emails": "\n".join(customer.emails),
            "phones": "\n".join(customer.phones),
            "postal_address": customer.postal_address,
            "tier": "key",
        },
    )
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.tier == "key"
    event = AuditEvent.objects.filter(action="customers.customer_changed").latest("seq")
    assert event.details["fields"] == ["tier"]


def test_delete_needs_the_delete_permission_and_removes_interactions(sam: Any, alice: Any) -> None:
    customer = CustomerFactory.create()
    InteractionFactory.create(customer=customer)
    url = reverse("customers:customer_delete", args=[customer.pk])
    assert _client_for(sam).post(url).status_code == 403
    assert _client_for(alice).post(url).status_code == 302
    assert not Customer.objects.filter(pk=customer.pk).exists()
    assert not Interaction.objects.exists()
    event = AuditEvent.objects.filter(action="customers.customer_deleted").latest("seq")
    assert event.object_id == str(customer.pk)


def test_staff_record_an_interaction(sam: Any) -> None:
    customer = CustomerFactory.create()
    url = reverse("customers:interaction_create", args=[customer.pk])
    bad = _client_for(sam).post(url, {"channel": "email", "summary": ""})
    assert bad.status_code == 400
    response = _client_for(sam).post(
        url,
        {"channel": "phone", "occurred_at": "2026-03-02T10:30", "summary": "Called about the invoice", "full_text": ""},
    )
    assert response.status_code == 302
    interaction = Interaction.objects.get()
    assert interaction.staff == sam and interaction.channel == "phone"


def test_navigation_shows_customers_to_roles_that_have_them(sam: Any, audrey: Any) -> None:
    url = reverse("customers:customer_list")
    assert url in _client_for(sam).get(reverse("home")).content.decode()
    assert url not in _client_for(audrey).get(reverse("home")).content.decode()


def test_asking_the_assistant_about_a_customer_starts_a_conversation_about_them(sam: Any, audrey: Any) -> None:
    from portal.assistant.models import Conversation
    from tests.assistant.factories import AssistantProfileFactory

    profile = AssistantProfileFactory.create(usable_by=["Staff"])
    customer = CustomerFactory.create(name="Elodie Durand")
    detail = _client_for(sam).get(reverse("customers:customer_detail", args=[customer.pk])).content.decode()
    assert "Ask the assistant about Elodie Durand" in detail
    url = reverse("customers:customer_ask", args=[customer.pk])
    response = _client_for(sam).post(url, {"profile": profile.pk})
    conversation = Conversation.objects.get()
    assert conversation.customer_id == customer.pk and conversation.owner == sam
    assert response["Location"] == reverse("assistant:conversation", args=[conversation.pk])
    assert _client_for(audrey).post(url, {"profile": profile.pk}).status_code == 403
    hidden = CustomerFactory.create(restricted=True)
    assert (
        _client_for(sam).post(reverse("customers:customer_ask", args=[hidden.pk]), {"profile": profile.pk}).status_code
        == 404
    )
    assert _client_for(sam).post(url, {"profile": 999999}).status_code == 404


def test_per_record_access_is_configured_in_the_site_admin() -> None:
    from tests.accounts.factories import UserFactory

    root = UserFactory.create(username="root", is_staff=True, is_superuser=True)
    customer = CustomerFactory.create(restricted=True)
    client = _client_for(root)
    permissions = client.get(reverse("admin:customers_customer_permissions", args=[customer.pk]))
    assert permissions.status_code == 200 and "admin/guardian/model/obj_perms_manage.html" in [
        template.name for template in permissions.templates
    ]
    change = client.get(reverse("admin:customers_customer_change", args=[customer.pk]))
    assert change.status_code == 200 and change.context["original"] == customer


def test_only_the_owner_or_an_administrator_changes_who_may_see_a_record(sam: Any, alice: Any) -> None:
    from tests.accounts.factories import UserFactory

    customer = CustomerFactory.create(owner=alice)
    data = {"name": customer.name, "emails": "\n".join(customer.emails), "tier": "standard", "restricted": "on"}
    data["owner"] = str(sam.pk)
    response = _client_for(sam).post(reverse("customers:customer_edit", args=[customer.pk]), data)
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.restricted is False and customer.owner == alice  # not sam's to change
    colleague = UserFactory.create(username="colleague", roles=["Staff"])
    _client_for(alice).post(reverse("customers:customer_edit", args=[customer.pk]), {**data, "owner": str(alice.pk)})
    customer.refresh_from_db()
    assert customer.restricted is True
    assert _client_for(colleague).get(reverse("customers:customer_detail", args=[customer.pk])).status_code == 404
