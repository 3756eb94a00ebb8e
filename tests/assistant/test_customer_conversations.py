"""Conversations about a customer: only a customer the user may see, and the conversation outlives the record."""

from __future__ import annotations

from typing import Any

import pytest
from django.http import Http404

from audit.models import AuditEvent
from portal.assistant import services
from portal.assistant.models import Conversation, MessageRole, MessageStatus
from portal.core.access import ObjectHidden
from portal.customers.services import customer_delete
from tests.assistant.helpers import run_answer, stored_answer
from tests.customers.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_a_conversation_cannot_be_about_a_customer_the_user_may_not_see(sam: Any, profile: Any):
    hidden = CustomerFactory.create(name="Hidden Person", restricted=True)

    with pytest.raises(ObjectHidden):
        services.conversation_create(actor=sam, profile=profile, customer_id=hidden.pk)
    with pytest.raises(Http404):
        services.conversation_create(actor=sam, profile=profile, customer_id=987654)
    assert not Conversation.objects.exists()

    visible = CustomerFactory.create(name="Ada Lovelace")
    created = services.conversation_create(actor=sam, profile=profile, customer_id=visible.pk)
    assert created.customer == visible


def test_deleting_the_customer_keeps_the_conversation_and_later_questions_work(sam: Any, alice: Any, profile: Any):
    customer = CustomerFactory.create(name="Ada Lovelace")
    conversation = services.conversation_create(actor=sam, profile=profile, customer_id=customer.pk)

    customer_delete(actor=alice, customer=customer)

    conversation.refresh_from_db()
    assert conversation.customer_id is None
    answer = stored_answer(run_answer(user=sam, conversation=conversation, question="When are refunds paid?"))
    assert answer.status == MessageStatus.COMPLETE


def test_a_customer_restricted_after_the_conversation_began_is_left_out_of_the_answer(sam: Any, profile: Any):
    customer = CustomerFactory.create(name="Ada Lovelace")
    conversation = services.conversation_create(actor=sam, profile=profile, customer_id=customer.pk)
    customer.restricted = True
    customer.save()

    answer = stored_answer(run_answer(user=sam, conversation=conversation, question="What is her e-mail?"))

    assert answer.status == MessageStatus.COMPLETE and answer.role == MessageRole.ASSISTANT
    assert "Ada Lovelace" not in answer.content
    assert not [part for part in answer.manifest["parts"] if part["kind"] == "customer"]
    stored = AuditEvent.objects.get(action="assistant.answer_stored", object_id=str(answer.pk))
    assert stored.details["retrieval"]["customer_withheld"] is True
