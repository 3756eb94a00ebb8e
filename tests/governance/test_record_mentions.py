"""People named in the free text of customer records (a shop manager in the notes, a buyer in an interaction)
are people the business knows: their names never leave in clear, whatever the wording that named them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from governance import known_entities
from governance.gate import GatedPrompt, PromptPart, egress_gate
from governance.mentions import people_named_in
from tests.customers.factories import CustomerFactory, InteractionFactory
from tests.governance.conftest import CLOUD


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Prefers e-mail; speak to Ana Silva about orders.", ["Ana Silva"]),
        ("Call with the shop manager, Joost van der Berg", ["Joost van der Berg"]),
        ("Joost van der Berg runs their shop and wants the new price list.", ["Joost van der Berg"]),
        ("Her colleague Tomasz Nowak handles invoices.", ["Tomasz Nowak"]),
        ("The buyer is Marie-Claire Dubois (head of purchasing).", ["Marie-Claire Dubois"]),
        ("Ask for Kenji Watanabe if she is away.", ["Kenji Watanabe"]),
        (
            "Store contact: Sven Olsen, tel 0612 345678. Sven Olsen and Ingrid Berg share it.",
            ["Sven Olsen", "Ingrid Berg"],
        ),
        ("Lena Fischer (owner) signed the contract.", ["Lena Fischer"]),
        ("Met with Priya Raman, the new account manager.", ["Priya Raman"]),
        ("Met Priya at the fair; Mr. Jansen called later.", ["Priya", "Jansen"]),
        ("Dear Mrs. Okafor, thanks. Regards, Lena Fischer", ["Okafor", "Lena Fischer"]),
        ("Noted Ana Silva's request for a new invoice.", []),
        ("Ana Silva's shop manager asked for a discount.", ["Ana Silva"]),
    ],
)
def test_it_finds_people_named_in_record_text(text: str, names: list[str]) -> None:
    assert [mention.name for mention in people_named_in(text)] == names


@pytest.mark.parametrize(
    "text",
    [
        "Deliveries go to Dok Noord 12 9000 Ghent on Monday.",
        "Shipped via DHL Express on Tuesday. Invoice sent to Accounts Payable.",
        "Spoke with Contoso Pharmaceuticals about the New York office.",
        "The Annual Report and the Price List are attached.",
        "Called Noord Bakery about the delayed order.",
        "For questions, contact Human Resources or the Chief Financial Officer.",
        "They said Generally the Claims team answers. You can ask Northwind Health's Member Services.",
        "Please contact Coordination of Benefits Management about Medicare Part D.",
    ],
)
def test_it_takes_no_organisation_place_or_document_for_a_person(text: str) -> None:
    assert people_named_in(text, exclude=["Noord Bakery"]) == []


pytestmark = pytest.mark.django_db

NOTES_WORDINGS = [
    "Prefers e-mail; speak to Ingrid Halvorsen about orders.",
    "Shop manager: Ingrid Halvorsen. Deliveries before noon.",
    "Ingrid Halvorsen runs the shop and decides on reorders.",
    "Orders go through their buyer, Ingrid Halvorsen (mornings only).",
]


@pytest.fixture
def shop() -> Iterator[Any]:
    def make(notes: str) -> Any:
        customer = CustomerFactory.create(name="Okafor, Amara", organisation="Noord Bakery", notes=notes)
        InteractionFactory.create(
            customer=customer, summary="Phone call", full_text="Talked to Bram de Wit, the assistant manager."
        )
        known_entities.invalidate()
        return customer

    yield make
    known_entities.invalidate()


def _ask(user: Any, *parts: PromptPart) -> GatedPrompt:
    return egress_gate(user=user, conversation_key="mentions", destinations=[CLOUD], parts=list(parts))


def _sent(gated: GatedPrompt) -> str:
    return "\n".join(message["content"] for message in gated.messages)


@pytest.mark.parametrize("notes", NOTES_WORDINGS)
def test_a_manager_named_in_the_notes_never_reaches_the_outbound_body(sam: Any, shop: Any, notes: str) -> None:
    customer = shop(notes)
    source = {"customer_id": customer.pk}
    parts = [
        PromptPart("customer", f"Notes: {notes}", source={**source, "field": "notes"}),
        PromptPart("question", "Draft a note to Ingrid: Halvorsen should expect the order; cc Bram de Wit."),
    ]
    gated = _ask(sam, *parts)
    sent = _sent(gated)
    for word in ("Ingrid", "Halvorsen", "Bram", "de Wit"):
        assert word not in sent, (word, sent)
    restorer = gated.restorer()
    assert parts[1].text in restorer.feed(sent) + restorer.finish()


def test_a_manager_named_in_full_is_masked_in_any_conversation(sam: Any, shop: Any) -> None:
    shop(NOTES_WORDINGS[0])
    sent = _sent(_ask(sam, PromptPart("question", "What did Ingrid Halvorsen order last month?")))
    assert "Halvorsen" not in sent and "Ingrid" not in sent


def test_an_interaction_recorded_later_registers_the_people_it_names(
    sam: Any, alice: Any, shop: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from django.utils import timezone

    from portal.customers.services import interaction_create

    customer = shop("")
    question = PromptPart("question", "Is Wilhelmina Korver the right person to ask?")
    assert "Korver" in _sent(_ask(sam, question))
    with django_capture_on_commit_callbacks(execute=True):
        interaction_create(
            actor=alice, customer=customer, occurred_at=timezone.now(), summary="Visit",
            full_text="Met the owner, Wilhelmina Korver, at the shop.",
        )  # fmt: skip
    assert "Korver" not in _sent(_ask(sam, question))


def test_after_the_ttl_the_dictionary_is_kept_while_no_source_changed(sam: Any, settings: Any) -> None:
    """Another process's change shows through the sources' fingerprints; no change, no rebuild in a question."""
    settings.GOVERNANCE_KNOWN_ENTITIES_TTL = 0
    customer = CustomerFactory.create(name="Halvard Quist")
    known_entities.invalidate()
    first = known_entities.current_index()
    assert known_entities.current_index() is first  # the TTL is up, nothing changed
    InteractionFactory.create(customer=customer, full_text="Spoke with the owner, Runa Lindqvist.")  # no invalidate()
    second = known_entities.current_index()
    assert second is not first
    assert "Lindqvist" not in _sent(_ask(sam, PromptPart("question", "Ask Runa Lindqvist about it.")))
    customer.name = "Halvard Quistgaard"
    customer.save()  # as another process would: no invalidate() here
    assert known_entities.current_index() is not second
