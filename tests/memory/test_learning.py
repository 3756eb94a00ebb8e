from __future__ import annotations

import json
import re
from typing import Any

import pytest

from audit.models import AuditEvent
from governance import known_entities
from portal.assistant.models import MessageRole
from portal.memory.learning import memory_learn_from_conversation, parse_proposals
from portal.memory.models import MemoryItem
from tests.assistant.factories import AssistantProfileFactory, ConversationFactory, MessageFactory
from tests.customers.factories import CustomerFactory
from tests.memory.factories import MemoryItemFactory

pytestmark = pytest.mark.django_db


def _conversation(owner: Any, *, customer: Any = None) -> Any:
    profile = AssistantProfileFactory.create(usable_by=["Staff"])
    conversation = ConversationFactory.create(
        owner=owner, profile=profile, customer_id=customer.pk if customer else None
    )
    question = MessageFactory.create(conversation=conversation, content="How long do refunds for damaged goods take?")
    MessageFactory.create(
        conversation=conversation,
        role=MessageRole.ASSISTANT,
        reply_to=question,
        content="Refunds for damaged goods are paid within 14 days of the return arriving.",
    )
    return conversation


def test_the_model_proposes_memories_through_the_gate_and_they_wait_for_review(
    sam: Any, fake_model: Any, fake_provider: Any
) -> None:
    existing = MemoryItemFactory.create(text="Refunds for damaged goods are paid within 30 days.")
    fake_provider.answer_with(
        "Here you go:\n```json\n"
        + json.dumps(
            [
                {
                    "text": "Refunds for damaged goods are paid within 14 days.",
                    "kind": "procedure",
                    "scope": "organisation",
                },
                {"text": "Sam likes short answers.", "kind": "preference", "scope": "user"},
                {"text": "Nonsense scope falls back to personal.", "kind": "opinion", "scope": "galaxy"},
            ]
        )
        + "\n```"
    )
    conversation = _conversation(sam)
    result = memory_learn_from_conversation(conversation_id=conversation.pk)
    assert len(result.proposed_ids) == 3, result
    [request] = fake_provider.requests
    assert "Refunds for damaged goods are paid within 14 days of the return arriving." in request.text
    assert "worth remembering" in request.text
    proposals = {m.text: m for m in MemoryItem.objects.filter(pk__in=result.proposed_ids)}
    assert all(m.status == "proposed" and m.source == "conversation" for m in proposals.values())
    refund = proposals["Refunds for damaged goods are paid within 14 days."]
    assert refund.kind == "procedure" and refund.source_conversation_id == conversation.pk
    assert [(f["memory_id"], f["relation"]) for f in refund.flags] == [(existing.pk, "contradiction")]
    personal = proposals["Sam likes short answers."]
    assert personal.scope == "user" and personal.scope_user == sam
    fallback = proposals["Nonsense scope falls back to personal."]
    assert fallback.scope == "user" and fallback.kind == "fact"
    event = AuditEvent.objects.filter(action="memory.memory_proposed").latest("seq")
    assert event.actor_username == "system:memory-learning"
    # the gate audited what it let leave, about this conversation, as it does for the assistant
    decided = AuditEvent.objects.get(action="governance.egress_decided")
    assert (decided.object_type, decided.object_id) == ("assistant.conversation", str(conversation.pk))
    assert decided.actor_id == sam.pk and fake_model.key in decided.details["destinations"]
    # idempotent: the same conversation state is not learned from twice
    again = memory_learn_from_conversation(conversation_id=conversation.pk)
    assert again.proposed_ids == () and again.skipped == "already learned from"
    assert len(fake_provider.requests) == 1


def test_customer_values_are_pseudonymized_on_the_way_and_restored_in_proposals(
    sam: Any, fake_model: Any, fake_provider: Any
) -> None:
    customer = CustomerFactory.create(name="Elodie Durand", emails=["elodie@durand.example"])
    known_entities.invalidate()  # what the customer services do after commit (factories bypass them)
    conversation = _conversation(sam, customer=customer)
    MessageFactory.create(
        conversation=conversation, content="Elodie Durand asked us to e-mail elodie@durand.example only."
    )

    def reply(body: dict[str, Any]) -> str:
        sent = json.dumps(body)
        person = re.search(r"<PERSON_\d+>", sent)
        email = re.search(r"<EMAIL_\d+>", sent)
        assert person and email, sent
        statement = f"Write to {person.group(0)} at {email.group(0)} by e-mail only."
        return json.dumps([{"text": statement, "kind": "preference", "scope": "customer"}])

    MessageFactory.create(
        conversation=conversation, role=MessageRole.ASSISTANT, content="Noted: e-mail elodie@durand.example only."
    )
    fake_provider.answer_with(reply)
    result = memory_learn_from_conversation(conversation_id=conversation.pk)
    [request] = fake_provider.requests
    assert "elodie@durand.example" not in request.text and "Elodie Durand" not in request.text
    [memory] = MemoryItem.objects.filter(pk__in=result.proposed_ids)
    assert memory.scope == "customer" and memory.scope_customer == customer
    assert memory.text == "Write to Elodie Durand at elodie@durand.example by e-mail only."


def test_nothing_is_asked_before_there_is_an_answer(sam: Any, fake_model: Any, fake_provider: Any) -> None:
    conversation = ConversationFactory.create(owner=sam, profile=AssistantProfileFactory.create(usable_by=["Staff"]))
    MessageFactory.create(conversation=conversation, content="Hello?")
    assert memory_learn_from_conversation(conversation_id=conversation.pk).skipped == "no answer yet"
    assert fake_provider.requests == []


def test_proposals_are_parsed_leniently_and_bounded() -> None:
    text = (
        'Sure! [{"text": "A"}, {"text": "a"}, "junk", {"text": ""}, {"text": "B", "scope": "customer"}, {"text": "C"}]'
    )
    proposals = parse_proposals(text, allow_customer=False, limit=2)
    assert [(p.text, p.kind, p.scope) for p in proposals] == [("A", "fact", "organisation"), ("B", "fact", "user")]
    assert parse_proposals("no json here", allow_customer=True, limit=5) == []
    assert parse_proposals("[not json]", allow_customer=True, limit=5) == []


def test_quiet_conversations_are_swept_once_per_last_message(sam: Any, fake_model: Any, fake_provider: Any) -> None:
    import datetime as dt

    from django.utils import timezone

    from portal.assistant.models import Conversation
    from portal.memory.learning import conversations_due_for_learning

    quiet = _conversation(sam)
    busy = _conversation(sam)
    unanswered = ConversationFactory.create(owner=sam, profile=AssistantProfileFactory.create(usable_by=["Staff"]))
    MessageFactory.create(conversation=unanswered, content="Hello?")
    an_hour_ago = timezone.now() - dt.timedelta(hours=1)
    Conversation.objects.filter(pk__in=[quiet.pk, unanswered.pk]).update(updated_at=an_hour_ago)
    assert conversations_due_for_learning() == [quiet.pk]
    fake_provider.answer_with("[]")
    assert memory_learn_from_conversation(conversation_id=quiet.pk).skipped == "nothing worth keeping"
    assert conversations_due_for_learning() == []  # learned, even though nothing was kept
    MessageFactory.create(conversation=quiet, content="One more thing: we close at 4 pm on Fridays.")
    MessageFactory.create(conversation=quiet, role=MessageRole.ASSISTANT, content="Noted.")
    Conversation.objects.filter(pk=quiet.pk).update(updated_at=an_hour_ago)
    assert conversations_due_for_learning() == [quiet.pk]  # new messages since the last run
    assert busy.pk not in conversations_due_for_learning()
