from __future__ import annotations

import datetime as dt

import factory
from django.utils import timezone

from portal.customers.models import Channel, Customer, Interaction


class CustomerFactory(factory.django.DjangoModelFactory[Customer]):
    class Meta:
        model = Customer

    name = factory.Sequence(lambda n: f"Customer Number{n}")
    organisation = factory.Sequence(lambda n: f"Organisation {n} Ltd")
    emails = factory.LazyAttribute(lambda c: [f"{c.name.split()[-1].lower()}@example.test"])
    phones = factory.LazyFunction(lambda: ["+44 20 7946 0000"])
    postal_address = "1 Example Street\nLondon"
    account_numbers = factory.LazyFunction(list)
    tier = "standard"
    notes = ""
    restricted = False


class InteractionFactory(factory.django.DjangoModelFactory[Interaction]):
    class Meta:
        model = Interaction

    customer = factory.SubFactory(CustomerFactory)
    channel = Channel.EMAIL
    occurred_at = factory.Sequence(lambda n: timezone.now() - dt.timedelta(days=30 - n))
    summary = factory.Sequence(lambda n: f"Interaction {n}")
    full_text = "Hello, a message."
