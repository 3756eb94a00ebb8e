"""Memory and customer context inside the assistant's main flow, with the fake provider at the far end."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from audit.models import AuditEvent
from governance import known_entities
from portal.memory.services import MemoryDraft, memory_create, memory_review
from tests.assistant.factories import AssistantProfileFactory, ConversationFactory
from tests.assistant.helpers import run_answer, stored_answer
from tests.customers.factories import CustomerFactory, InteractionFactory

pytestmark = pytest.mark.django_db


def test_a_proposed_then_approved_memory_is_used_in_the_answer(
    sam: Any, olivia: Any, fake_model: Any, fake_provider: Any
) -> None:
    memory = memory_create(actor=sam, draft=MemoryDraft(text="Refunds for damaged goods are paid within 14 days."))
    conversation = ConversationFactory.create(owner=sam, profile=AssistantProfileFactory.create(usable_by=["Staff"]))
    stored_answer(run_answer(user=sam, conversation=conversation, question="How fast are refunds for damaged goods?"))
    assert "within 14 days" not in fake_provider.requests[-1].text  # proposed: not used yet
    memory_review(actor=olivia, memory=memory, approve=True)
    fake_provider.answer_with("Damaged goods are refunded within 14 days.")
    answer = stored_answer(
        run_answer(user=sam, conversation=conversation, question="How fast are refunds for damaged goods?")
    )
    assert "Refunds for damaged goods are paid within 14 days." in fake_provider.requests[-1].text
    event = AuditEvent.objects.filter(action="assistant.answer_stored", object_id=str(answer.pk)).get()
    assert event.details["retrieval"]["memory_ids"] == [memory.pk]
    sources = [part["source"] for part in answer.manifest["parts"] if part["kind"] == "memory"]
    assert sources and sources[0]["memory_id"] == memory.pk


def test_customer_values_are_pseudonymized_for_the_provider_and_restored_in_the_answer(
    sam: Any, fake_model: Any, fake_provider: Any
) -> None:
    customer = CustomerFactory.create(
        name="Elodie Marchetti", organisation="Marchetti Fine Bakeries", emails=["elodie@marchetti.example"]
    )
    InteractionFactory.create(
        customer=customer,
        summary="Asks for a credit note",
        full_text="Could you confirm the credit note? Elodie Marchetti",
    )
    known_entities.invalidate()  # what the customer services do after commit (factories bypass them)

    def reply(body: dict[str, Any]) -> str:
        sent = json.dumps(body)
        person = re.search(r"<PERSON_\d+>", sent)
        email = re.search(r"<EMAIL_\d+>", sent)
        assert person and email, sent
        return f"Dear {person.group(0)}, we confirm the credit note; we will write to {email.group(0)}."

    fake_provider.answer_with(reply)
    conversation = ConversationFactory.create(
        owner=sam, profile=AssistantProfileFactory.create(usable_by=["Staff"]), customer_id=customer.pk
    )
    answer = stored_answer(
        run_answer(user=sam, conversation=conversation, question="Draft a reply to the last e-mail from this customer.")
    )
    sent = fake_provider.requests[-1].text
    for value in ("Elodie Marchetti", "elodie@marchetti.example"):
        assert value not in sent
    assert "credit note" in sent  # the interaction history went along, pseudonymized
    assert (
        answer.content
        == "Dear Elodie Marchetti, we confirm the credit note; we will write to elodie@marchetti.example."
    )
    customer_parts = [part for part in answer.manifest["parts"] if part["kind"] == "customer"]
    assert {part["source"]["field"] for part in customer_parts} >= {"name", "emails", "interactions"}
    assert AuditEvent.objects.filter(action="customers.customer_viewed", object_id=str(customer.pk)).exists()
