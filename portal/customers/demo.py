"""Fictional customers of the demo organisation, with interaction histories (written for this project;
names, addresses and numbers are invented; phone numbers are from Ofcom's drama ranges, e-mail domains
end in .example)."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from audit.services import audit
from portal.customers.entities import known_entities_invalidate_on_commit
from portal.customers.models import Customer, Interaction


@dataclass(frozen=True)
class DemoInteraction:
    days_ago: int
    channel: str
    summary: str
    full_text: str


@dataclass(frozen=True)
class DemoCustomer:
    name: str
    organisation: str
    emails: tuple[str, ...]
    phones: tuple[str, ...]
    postal_address: str
    account_numbers: tuple[str, ...]
    tier: str
    notes: str
    interactions: tuple[DemoInteraction, ...]
    restricted: bool = False


HANDWRITTEN_CUSTOMERS = (
    DemoCustomer(
        name="Elodie Marchetti",
        organisation="Marchetti Fine Bakeries",
        emails=("elodie@marchetti-bakeries.example",),
        phones=("020 7946 0321",),
        postal_address="14 Larkspur Row\nLondon\nE8 4QT",
        account_numbers=("GB82 WEST 1234 5698 7654 32",),
        tier="key",
        notes="Orders flour blends monthly; prefers e-mail; pays on 30-day terms.",
        interactions=(
            DemoInteraction(
                40,
                "meeting",
                "Quarterly review: spring range and delivery windows",
                "Elodie walked us through the spring range. She wants deliveries before 7 am on weekdays and asked "
                "whether we can split the rye order into two drops.",
            ),
            DemoInteraction(
                12,
                "phone",
                "Late delivery complaint (order 5521)",
                "Order 5521 arrived at 9:40 instead of before 7:00. Elodie was polite but clear that a second late "
                "delivery this month would make her look at other suppliers. We promised a credit note.",
            ),
            DemoInteraction(
                3,
                "email",
                "Asks for the credit note and a revised delivery slot",
                "Hello,\n\nThank you for the call last week. Could you confirm the credit note for order 5521 and "
                "whether the 6:30 delivery slot is now guaranteed for the rest of the quarter? We are planning our "
                "Easter production around it.\n\nBest regards,\nElodie Marchetti",
            ),
        ),
    ),
    DemoCustomer(
        name="Tomasz Wieczorek",
        organisation="Wieczorek Logistics",
        emails=("t.wieczorek@wlogistics.example", "accounts@wlogistics.example"),
        phones=("0161 496 0754",),
        postal_address="Unit 7, Canal Side Park\nManchester\nM4 6BD",
        account_numbers=("ACC-20417",),
        tier="priority",
        notes="Runs our northern deliveries; invoices go to the accounts address.",
        interactions=(
            DemoInteraction(
                25,
                "email",
                "Fuel surcharge proposal",
                "Tomasz proposes a 4% fuel surcharge from next month and asks for an answer by the end of the month.",
            ),
            DemoInteraction(
                6,
                "phone",
                "Agreed to review the surcharge after the quarter",
                "We agreed to keep current rates until the quarter ends and to review the surcharge with fuel "
                "prices then. Tomasz asked for the decision in writing.",
            ),
        ),
    ),
    DemoCustomer(
        name="Amara Osei",
        organisation="Osei & Daughters Catering",
        emails=("amara@oseicatering.example",),
        phones=("0117 496 0188",),
        postal_address="3 Harbour Steps\nBristol\nBS1 5TR",
        account_numbers=("ACC-31190",),
        tier="standard",
        notes="Seasonal catering customer; large orders in December.",
        interactions=(
            DemoInteraction(
                60,
                "chat",
                "Asked about gluten-free options",
                "Amara asked whether our gluten-free blend is produced on a separate line. We sent the allergen sheet.",
            ),
            DemoInteraction(
                9,
                "email",
                "Wants a quote for 40 kg of gluten-free blend",
                "Hi, we have a wedding season coming up. Could you quote 40 kg of the gluten-free blend delivered "
                "in two batches in May? Thanks, Amara",
            ),
        ),
    ),
    DemoCustomer(
        name="Henrik Lindqvist",
        organisation="Lindqvist Hotels",
        emails=("henrik.lindqvist@lindqvisthotels.example",),
        phones=("020 7946 0877",),
        postal_address="22 Kingsgate Square\nLondon\nSW1P 3AZ",
        account_numbers=("ACC-40022",),
        tier="key",
        notes="Restricted: contract negotiation in progress; only the account owner and administrators.",
        restricted=True,
        interactions=(
            DemoInteraction(
                15,
                "meeting",
                "Contract renewal: first round",
                "Henrik asked for a 6% volume discount in exchange for a three-year contract. We said we would "
                "come back with a counter-offer.",
            ),
        ),
    ),
)


# ---- generated histories, so the local prediction models (portal/ml) have enough to learn from ------------
# Invented names; each customer has a tier, a preferred channel, a contact rhythm and a propensity to
# complain; after complaints some stop calling (the churn the models learn to see coming).
FIRST_NAMES = (
    "Aisha",
    "Bruno",
    "Carys",
    "Dmitri",
    "Esme",
    "Farid",
    "Greta",
    "Hamish",
    "Ines",
    "Jonas",
    "Keziah",
    "Lorcan",
    "Mireille",
    "Nnamdi",
    "Orla",
    "Piotr",
    "Quinn",
    "Rosalind",
    "Soren",
    "Tamsin",
    "Ulrich",
    "Valentina",
    "Wendell",
    "Ximena",
    "Yusuf",
    "Zofia",
    "Anouk",
    "Bastian",
    "Celeste",
    "Dorian",
)
LAST_NAMES = (
    "Abernethy",
    "Brightwater",
    "Castellane",
    "Dunmore",
    "Eskdale",
    "Fairbrook",
    "Galloway",
    "Holloway",
    "Ingleby",
    "Jessop",
    "Kilbride",
    "Lowther",
    "Marchbank",
    "Northcote",
    "Ormsby",
    "Pendleford",
    "Quarrie",
    "Redfern",
    "Selkirk",
    "Thornaby",
    "Underwood",
    "Vasquez-Hale",
    "Westerby",
    "Yardley",
    "Zennor",
)
BUSINESS_KINDS = ("Couriers", "Catering", "Bakery", "Hotels", "Florists", "Logistics", "Cafe", "Deliveries",
                  "Cycle Hire", "Grocers")  # fmt: skip
ROUTINE_SUMMARIES = {
    "email": ("Order for spring stock", "Asked for delivery dates", "Invoice query", "Quote request for cargo bikes",
              "Confirmed the next order"),
    "phone": ("Called about order status", "Booked a fleet service", "Asked about spare parts", "Changed a delivery"),
    "meeting": ("Quarterly account review", "Visit to see the new range", "Planning meeting for the season"),
    "chat": ("Asked about opening hours", "Question about a part number", "Checked stock of tyres"),
    "letter": ("Signed contract returned", "Change of address notice"),
    "other": ("Met at the trade fair",),
}  # fmt: skip
COMPLAINT_SUMMARIES = (
    "Complaint: late delivery of order {n}", "Unhappy about a damaged frame on delivery {n}",
    "Asked for a refund on faulty brakes (order {n})", "Said they may move to other suppliers after delays",
    "Billing error: overcharged on invoice {n}", "Escalated a missing part in order {n}",
)  # fmt: skip
GENERATED_COUNT = 140
GENERATED_SEED = 20261201


def generated_customers(count: int = GENERATED_COUNT, seed: int = GENERATED_SEED) -> tuple[DemoCustomer, ...]:
    rng = random.Random(seed)
    names = [(first, last) for first in FIRST_NAMES for last in LAST_NAMES]
    rng.shuffle(names)
    channels = ("email", "phone", "meeting", "chat", "letter")
    customers = []
    for first, last in names[:count]:
        tier = rng.choices(("standard", "priority", "key"), weights=(60, 25, 15))[0]
        preferred = rng.choices(channels, weights=(40, 30, 12, 14, 4))[0]
        rhythm = {"key": 14.0, "priority": 24.0, "standard": 42.0}[tier] * rng.uniform(0.7, 1.4)
        complaint_rate = rng.uniform(0.02, 0.3)
        days_ago = float(rng.randint(360, 720))
        items = []
        while days_ago > 0:
            complaint = rng.random() < complaint_rate
            channel = rng.choice(("phone", "email")) if complaint else (
                preferred if rng.random() < 0.7 else rng.choice(channels))  # fmt: skip
            summary = rng.choice(COMPLAINT_SUMMARIES) if complaint else rng.choice(ROUTINE_SUMMARIES[channel])
            items.append(
                DemoInteraction(max(1, round(days_ago)), channel, summary.format(n=rng.randint(5000, 9999)), "")
            )
            hazard = (0.28 if complaint else 0.02) * (0.5 if tier == "key" else 1.0)
            if rng.random() < hazard:
                break  # they stop getting in touch
            days_ago -= rng.expovariate(1 / rhythm) + 1
        organisation = f"{last} {rng.choice(BUSINESS_KINDS)}"
        customers.append(
            DemoCustomer(
                name=f"{first} {last}", organisation=organisation,
                emails=(f"{first.lower()}.{last.lower()}@{last.lower()}-trade.example",), phones=(),
                postal_address="", account_numbers=(), tier=tier,
                notes="Generated demo customer (history for the local prediction models).",
                interactions=tuple(items),
            )
        )  # fmt: skip
    return tuple(customers)


DEMO_CUSTOMERS = HANDWRITTEN_CUSTOMERS + generated_customers()


@transaction.atomic
def demo_customers_ensure() -> int:
    """Create the demo customers that do not exist yet (matched by name); returns how many were created."""
    owner = User.objects.filter(username="staff").first()
    admin = User.objects.filter(username="admin").first()
    created = 0
    now = timezone.now()
    for demo in DEMO_CUSTOMERS:
        if Customer.objects.filter(name=demo.name).exists():
            continue
        customer = Customer.objects.create(
            name=demo.name,
            organisation=demo.organisation,
            emails=list(demo.emails),
            phones=list(demo.phones),
            postal_address=demo.postal_address,
            account_numbers=list(demo.account_numbers),
            tier=demo.tier,
            notes=demo.notes,
            owner=admin if demo.restricted else owner,
            restricted=demo.restricted,
        )
        Interaction.objects.bulk_create(
            [
                Interaction(
                    customer=customer,
                    channel=item.channel,
                    occurred_at=now - dt.timedelta(days=item.days_ago, hours=2),
                    staff=owner,
                    summary=item.summary,
                    full_text=item.full_text,
                )
                for item in demo.interactions
            ]
        )
        audit(
            actor=None,
            actor_username="system",
            action="demo.customer_created",
            target=customer,
            details={"interactions": len(demo.interactions)},
        )
        created += 1
    if created:
        known_entities_invalidate_on_commit()
    return created
