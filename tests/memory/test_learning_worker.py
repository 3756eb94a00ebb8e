"""Memory learning on a real worker process: the beat sweep finds a quiet conversation, the learning task asks the
(fake, real-HTTP) model through the gate, and the proposals wait for review."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from portal.assistant.models import Conversation
from portal.memory.models import LearningRun, MemoryItem
from portal.memory.tasks import memory_learn_from_idle_conversations_task
from tests.memory.test_learning import _conversation
from tests.routing.factories import CatalogModelFactory
from tests.workers import Workers

pytestmark = pytest.mark.django_db(transaction=True)

FAKE_KEY = "sk-fake-memory-worker-key-0123456789"


def test_a_quiet_conversation_is_learned_from_by_a_real_worker(workers: Workers, sam: Any, fake_provider: Any):
    CatalogModelFactory.create(display_name="Fake economy", api_base=fake_provider.url, tier="economy")
    fake_provider.answer_with(
        json.dumps([{"text": "Refunds for damaged goods are paid within 14 days.", "kind": "procedure"}])
    )
    conversation = _conversation(sam)
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now() - dt.timedelta(hours=1))
    workers.start(FAKE_PROVIDER_KEY=FAKE_KEY)
    memory_learn_from_idle_conversations_task.delay()  # what beat sends every 5 minutes

    workers.wait_for("the learning run", lambda: LearningRun.objects.filter(conversation_id=conversation.pk).first())
    [proposal] = MemoryItem.objects.filter(source_conversation_id=conversation.pk)
    assert proposal.text == "Refunds for damaged goods are paid within 14 days."
    assert proposal.status == "proposed" and proposal.kind == "procedure"
    [request] = fake_provider.requests  # one call, over HTTP, with the worker's key
    assert "Refunds for damaged goods are paid within 14 days of the return arriving." in request.text
    assert FAKE_KEY in request.headers.get("authorization", "")
    assert AuditEvent.objects.filter(action="memory.memory_proposed", object_id=str(proposal.pk)).exists()
