"""A few approved memories for the demo organisation (written for this project)."""

from __future__ import annotations

from django.db import transaction

from audit.services import audit
from portal.customers.selectors import customer_by_name
from portal.memory import embedding
from portal.memory.models import MemoryItem, Scope, Source, Status

DEMO_MEMORIES = (
    ("procedure", None, "Late deliveries are compensated with a credit note of 10% of the order value."),
    ("decision", None, "Fuel surcharges from carriers are reviewed once per quarter, not month by month."),
    ("preference", "Elodie Marchetti", "Elodie Marchetti prefers e-mail and deliveries before 7 am on weekdays."),
    ("fact", "Amara Osei", "Osei & Daughters Catering need allergen sheets with every gluten-free quote."),
)


@transaction.atomic
def demo_memories_ensure() -> int:
    created = 0
    for kind, customer_name, text in DEMO_MEMORIES:
        if MemoryItem.objects.filter(text=text).exists():
            continue
        customer = customer_by_name(name=customer_name) if customer_name else None
        if customer_name and customer is None:
            continue
        memory = MemoryItem.objects.create(
            text=text,
            kind=kind,
            scope=Scope.CUSTOMER if customer else Scope.ORGANISATION,
            scope_customer=customer,
            source=Source.IMPORT,
            status=Status.APPROVED,
            embedding=embedding.embed_texts([text])[0],
        )
        audit(
            actor=None,
            actor_username="system",
            action="demo.memory_created",
            target=memory,
            details={"kind": kind, "scope": memory.scope},
        )
        created += 1
    return created
