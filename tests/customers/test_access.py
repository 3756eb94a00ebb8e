"""The portal's Access screen of a restricted customer: who sees it, grant and revoke (audited, by id), and who
may open it (the owner and those who see every customer: allowed; someone merely given access: 403; anyone
the record is hidden from: 404)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.http import Http404
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from portal.customers.forms import ERROR_ACCESS_CHOOSE_ONE, ERROR_ACCESS_UNKNOWN_USER
from portal.customers.selectors import customer_choices_for_user, customer_context, customers_visible_to
from portal.customers.services import (
    ERROR_ACCESS_NO_CUSTOMER_ROLE,
    ERROR_ACCESS_NOT_RESTRICTED,
    customer_access_grant,
)
from tests.accounts.factories import UserFactory
from tests.customers.factories import CustomerFactory

pytestmark = pytest.mark.django_db

SECRET_NAME = "Imogen Whitlock"


def access_url(customer: Any) -> str:
    return reverse("customers:customer_access", kwargs={"customer_id": customer.pk})


def fresh(user: Any) -> Any:
    """The user read again, without the permission caches of an earlier check."""
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def tess(db: None) -> Any:
    """Staff, owner of the restricted record."""
    return UserFactory.create(username="tess", roles=["Staff"])


@pytest.fixture
def restricted(tess: Any) -> Any:
    return CustomerFactory.create(name=SECRET_NAME, restricted=True, owner=tess, emails=["imogen@whitlock.test"])


def _access_events() -> Any:
    return AuditEvent.objects.filter(action__in=["customers.access_granted", "customers.access_revoked"])


# ---- grant and revoke -----------------------------------------------------------------------------------
def test_a_grant_lets_the_person_see_the_customer_and_a_revoke_takes_it_away(
    client: Any, tess: Any, sam: Any, restricted: Any
) -> None:
    assert restricted not in customers_visible_to(user=sam)
    client.force_login(tess)

    response = client.post(access_url(restricted), {"action": "grant", "username": "sam"})

    assert response.status_code == 302 and response["Location"] == access_url(restricted)
    sam = fresh(sam)
    assert restricted in customers_visible_to(user=sam)
    assert customer_context(user=sam, customer_id=restricted.pk).name == SECRET_NAME
    assert [pk for pk, _ in customer_choices_for_user(user=sam, search="Whitlock")] == [restricted.pk]
    granted = AuditEvent.objects.get(action="customers.access_granted")
    assert granted.object_type == "customers.customer" and granted.object_id == str(restricted.pk)
    assert (granted.details["customer_id"], granted.details["user_id"]) == (restricted.pk, sam.pk)
    assert "role" not in granted.details
    assert granted.actor_id == tess.pk
    page = client.get(access_url(restricted)).content.decode()
    assert 'Revoke<span class="visually-hidden"> from sam' in page
    sams_list = Client()
    sams_list.force_login(sam)
    assert SECRET_NAME in sams_list.get(reverse("customers:customer_list")).content.decode()

    response = client.post(access_url(restricted), {"action": "revoke", "username": "sam"})

    assert response.status_code == 302
    sam = fresh(sam)
    assert restricted not in customers_visible_to(user=sam)
    with pytest.raises(Http404):
        customer_context(user=sam, customer_id=restricted.pk)
    assert SECRET_NAME not in sams_list.get(reverse("customers:customer_list")).content.decode()
    revoked = AuditEvent.objects.get(action="customers.access_revoked")
    assert (revoked.details["customer_id"], revoked.details["user_id"]) == (restricted.pk, sam.pk)


def test_a_grant_to_a_role_lets_its_members_see_the_customer_and_is_audited_by_role_name(
    client: Any, alice: Any, sam: Any, restricted: Any
) -> None:
    staff = Group.objects.get(name="Staff")
    client.force_login(alice)  # sees every customer, so may manage any record's access

    assert client.post(access_url(restricted), {"action": "grant", "group": staff.pk}).status_code == 302

    assert restricted in customers_visible_to(user=fresh(sam))
    details = AuditEvent.objects.get(action="customers.access_granted").details
    assert (details["customer_id"], details["role"]) == (restricted.pk, "Staff") and "user_id" not in details
    page = client.get(access_url(restricted)).content.decode()
    assert 'Revoke<span class="visually-hidden"> from the role Staff' in page

    assert client.post(access_url(restricted), {"action": "revoke", "group": staff.pk}).status_code == 302
    assert restricted not in customers_visible_to(user=fresh(sam))
    assert AuditEvent.objects.get(action="customers.access_revoked").details["role"] == "Staff"


def test_the_trail_never_holds_the_customers_or_the_grantees_personal_values(
    client: Any, tess: Any, restricted: Any
) -> None:
    sara = UserFactory.create(username="sara.jones", first_name="Sara", last_name="Jones", roles=["Staff"])
    client.force_login(tess)
    client.post(access_url(restricted), {"action": "grant", "username": "sara.jones"})
    client.post(access_url(restricted), {"action": "revoke", "username": "sara.jones"})
    events = list(_access_events())
    assert len(events) == 2
    for event in events:
        details = json.dumps(event.details).lower()
        assert "imogen" not in details and "whitlock" not in details and "sara" not in details
        assert event.details["user_id"] == sara.pk


def test_granting_twice_is_a_no_op_with_a_message_and_one_event(
    client: Any, tess: Any, sam: Any, restricted: Any
) -> None:
    client.force_login(tess)
    client.post(access_url(restricted), {"action": "grant", "username": "sam"})

    response = client.post(access_url(restricted), {"action": "grant", "username": "sam"}, follow=True)

    assert "Nothing to change: sam could already see it." in response.content.decode()
    assert AuditEvent.objects.filter(action="customers.access_granted").count() == 1


def test_granting_the_owner_or_revoking_what_was_never_granted_changes_nothing(
    client: Any, tess: Any, sam: Any, restricted: Any
) -> None:
    client.force_login(tess)
    owner = client.post(access_url(restricted), {"action": "grant", "username": "tess"}, follow=True)
    never = client.post(access_url(restricted), {"action": "revoke", "username": "sam"}, follow=True)
    assert "Nothing to change: tess could already see it." in owner.content.decode()
    assert "Nothing to change: sam had no access of their own." in never.content.decode()
    assert not _access_events().exists()


def test_a_grant_needs_exactly_one_role_or_one_known_active_user(client: Any, tess: Any, restricted: Any) -> None:
    staff = Group.objects.get(name="Staff")
    UserFactory.create(username="gone", roles=["Staff"], is_active=False)
    client.force_login(tess)

    neither = client.post(access_url(restricted), {"action": "grant"})
    both = client.post(access_url(restricted), {"action": "grant", "group": staff.pk, "username": "sam"})
    unknown = client.post(access_url(restricted), {"action": "grant", "username": "nobody-here"})
    inactive = client.post(access_url(restricted), {"action": "grant", "username": "gone"})

    for response in (neither, both):
        assert response.status_code == 400 and ERROR_ACCESS_CHOOSE_ONE in response.content.decode()
    for response in (unknown, inactive):
        assert response.status_code == 400 and ERROR_ACCESS_UNKNOWN_USER in response.content.decode()
    assert not _access_events().exists()


def test_a_grant_to_someone_whose_role_has_no_customers_is_refused(
    client: Any, tess: Any, oscar: Any, restricted: Any
) -> None:
    client.force_login(tess)
    response = client.post(access_url(restricted), {"action": "grant", "username": "oscar"})
    assert response.status_code == 400
    assert ERROR_ACCESS_NO_CUSTOMER_ROLE.replace("'", "&#x27;") in response.content.decode()
    assert not _access_events().exists()


def test_the_post_is_csrf_protected(tess: Any, sam: Any, restricted: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(tess)
    assert client.post(access_url(restricted), {"action": "grant", "username": "sam"}).status_code == 403
    assert restricted not in customers_visible_to(user=fresh(sam))
    page = client.get(access_url(restricted)).content.decode()
    assert page.count('name="csrfmiddlewaretoken"') >= 2  # the grant form and the revoke button carry the token


# ---- the page -------------------------------------------------------------------------------------------
def test_the_page_lists_the_owner_the_grants_and_the_roles_that_see_every_customer(
    client: Any, tess: Any, sam: Any, restricted: Any
) -> None:
    customer_access_grant(actor=tess, customer=restricted, user=sam)
    client.force_login(tess)
    page = client.get(access_url(restricted)).content.decode()
    assert tess.get_full_name() in page and sam.get_full_name() in page
    assert "everyone with the role Administrator" in page  # by role name, not by permission key
    assert "view_all_customers" not in page
    assert f'action="{access_url(restricted)}"' in page and "data-confirm=" in page


def test_names_are_escaped(client: Any, tess: Any) -> None:
    customer = CustomerFactory.create(name="<script>alert(1)</script>", restricted=True, owner=tess)
    client.force_login(tess)
    page = client.get(access_url(customer)).content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_an_open_record_says_so_and_offers_no_grant(client: Any, tess: Any, sam: Any) -> None:
    customer = CustomerFactory.create(restricted=False, owner=tess)
    client.force_login(tess)
    page = client.get(access_url(customer)).content.decode()
    assert "This record is not restricted" in page and 'value="grant"' not in page

    response = client.post(access_url(customer), {"action": "grant", "username": "sam"})

    assert response.status_code == 400 and "This customer is open to everyone" in response.content.decode()
    assert ERROR_ACCESS_NOT_RESTRICTED.startswith("This customer is open to everyone")
    assert not _access_events().exists()


# ---- who may open it --------------------------------------------------------------------------------------
def test_someone_given_access_may_see_the_record_but_not_manage_it(
    client: Any, tess: Any, sam: Any, restricted: Any
) -> None:
    customer_access_grant(actor=tess, customer=restricted, user=sam)
    client.force_login(sam)
    assert client.get(reverse("customers:customer_detail", args=[restricted.pk])).status_code == 200
    assert client.get(access_url(restricted)).status_code == 403
    other = UserFactory.create(username="other", roles=["Staff"])
    assert client.post(access_url(restricted), {"action": "grant", "username": "other"}).status_code == 403
    assert client.post(access_url(restricted), {"action": "revoke", "username": "sam"}).status_code == 403
    assert restricted not in customers_visible_to(user=other)
    assert _access_events().count() == 1  # tess's grant only


def test_staff_the_record_is_hidden_from_get_404(client: Any, sam: Any, restricted: Any) -> None:
    client.force_login(sam)
    assert client.get(access_url(restricted)).status_code == 404
    assert client.post(access_url(restricted), {"action": "grant", "username": "sam"}).status_code == 404
    assert client.get(reverse("customers:customer_access", kwargs={"customer_id": 999999})).status_code == 404
    assert restricted not in customers_visible_to(user=fresh(sam))


def test_staff_who_see_an_open_record_but_do_not_own_it_get_403(client: Any, sam: Any, tess: Any) -> None:
    customer = CustomerFactory.create(restricted=False, owner=tess)
    client.force_login(sam)
    assert client.get(access_url(customer)).status_code == 403


def test_people_whose_role_has_no_customers_get_the_customers_403(
    client: Any, oscar: Any, audrey: Any, restricted: Any
) -> None:
    for user in (oscar, audrey):
        client.force_login(user)
        assert client.get(access_url(restricted)).status_code == 403  # as on every customers page
    assert not _access_events().exists()


# ---- the link on the customer page ------------------------------------------------------------------------
def test_the_access_link_shows_only_to_those_who_may_open_it(
    client: Any, tess: Any, sam: Any, alice: Any, restricted: Any
) -> None:
    detail = reverse("customers:customer_detail", args=[restricted.pk])
    customer_access_grant(actor=tess, customer=restricted, user=sam)
    for user, shown in ((tess, True), (alice, True), (sam, False)):
        client.force_login(user)
        assert (access_url(restricted) in client.get(detail).content.decode()) is shown, user.username
    open_record = CustomerFactory.create(restricted=False, owner=tess)
    client.force_login(tess)
    page = client.get(reverse("customers:customer_detail", args=[open_record.pk])).content.decode()
    assert access_url(open_record) not in page
