from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from audit.models import AuditEvent
from governance import known_entities
from portal.customers.entities import customer_known_entities
from portal.customers.selectors import customer_context
from portal.customers.services import customer_create, customer_delete, customer_update
from tests.customers.factories import CustomerFactory, InteractionFactory

pytestmark = pytest.mark.django_db


def test_the_context_has_the_fields_and_newest_interactions_and_is_an_audited_read(sam: Any, settings: Any) -> None:
    settings.CUSTOMERS_CONTEXT_INTERACTIONS = 2
    customer = CustomerFactory.create(name="Elodie Durand", notes="", account_numbers=[])
    for summary in ("first", "second", "third"):
        InteractionFactory.create(customer=customer, summary=summary, full_text=f"{summary} e-mail body")
    context = customer_context(user=sam, customer_id=customer.pk)
    assert context.customer_id == customer.pk and context.name == "Elodie Durand"
    assert context.url == customer.get_absolute_url()
    assert set(context.fields) == {"name", "organisation", "emails", "phones", "postal_address", "tier", "interactions"}
    assert context.fields["interactions"].index("third e-mail body") < context.fields["interactions"].index("second")
    assert "first" not in context.fields["interactions"]
    assert [item["summary"] for item in context.interactions] == ["third", "second"]
    assert context.interactions[0]["full_text"] == "third e-mail body"
    event = AuditEvent.objects.filter(action="customers.customer_viewed").latest("seq")
    assert event.object_id == str(customer.pk) and event.details["purpose"] == "assistant"


def test_the_context_of_a_hidden_customer_is_not_given(sam: Any, audrey: Any) -> None:
    hidden = CustomerFactory.create(restricted=True)
    with pytest.raises(Http404):
        customer_context(user=sam, customer_id=hidden.pk)
    with pytest.raises(PermissionDenied):
        customer_context(user=audrey, customer_id=CustomerFactory.create().pk)


def test_every_customer_value_is_a_known_entity_of_the_right_class() -> None:
    CustomerFactory.create(
        name="Elodie Durand",
        organisation="Durand Bakery",
        emails=["elodie@durand.example"],
        phones=["020 7946 0018"],
        postal_address="12 Rue des Lilas\n75011 Paris",
        account_numbers=["GB82 WEST 1234 5698 7654 32", "ACC-20931"],
    )
    found = {(entity.value, entity.data_class) for entity in customer_known_entities()}
    assert {
        ("Elodie Durand", "PERSON"),
        ("Durand Bakery", "CUSTOMER_FIELD"),
        ("elodie@durand.example", "EMAIL"),
        ("020 7946 0018", "PHONE"),
        ("+442079460018", "PHONE"),
        ("12 Rue des Lilas\n75011 Paris", "POSTAL_ADDRESS"),
        ("GB82 WEST 1234 5698 7654 32", "BANK_ACCOUNT"),
        ("ACC-20931", "ACCOUNT_NUMBER"),  # not an IBAN: a class of its own, pseudonymized by default
    } <= found
    # the address is found whole and by its parts, never by the town alone
    text = "Write to 12 Rue des Lilas, or 75011 Paris, or 12 Rue des Lilas 75011 Paris; Paris is lovely."
    hits = {(text[f.start : f.end], f.data_class) for f in known_entities.known_entity_findings(text)}
    assert {
        ("12 Rue des Lilas", "POSTAL_ADDRESS"),
        ("75011 Paris", "POSTAL_ADDRESS"),
        ("12 Rue des Lilas 75011 Paris", "POSTAL_ADDRESS"),
    } <= hits
    assert ("Paris", "POSTAL_ADDRESS") not in hits


def test_the_governance_dictionary_follows_creates_changes_and_deletes(
    alice: Any, django_capture_on_commit_callbacks: Any
) -> None:
    def detected(text: str) -> set[str]:
        return {text[f.start : f.end] for f in known_entities.known_entity_findings(text)}

    known_entities.current_index()  # built before the customer exists
    with django_capture_on_commit_callbacks(execute=True):
        customer = customer_create(actor=alice, name="Nadia Okafor", emails=["nadia@okafor.example"])
    assert detected("Please write to Nadia Okafor at nadia@okafor.example") == {"Nadia Okafor", "nadia@okafor.example"}
    with django_capture_on_commit_callbacks(execute=True):
        customer_update(actor=alice, customer=customer, name="Nadia Okafor-Reyes")
    assert "Nadia Okafor-Reyes" in detected("Ask Nadia Okafor-Reyes")
    with django_capture_on_commit_callbacks(execute=True):
        customer_delete(actor=alice, customer=customer)
    assert detected("Ask Nadia Okafor-Reyes at nadia@okafor.example") == set()
