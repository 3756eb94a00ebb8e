"""Outside a transaction, with the connection pool, a question's memory search and history run beside its
knowledge search, each on a pooled connection of its own, and give what they give in turn."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from audit.models import AuditEvent
from audit.services import audit_batch
from portal.assistant import pipeline, selectors
from tests.assistant.factories import MessageFactory
from tests.memory.factories import MemoryItemFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _recording_threads(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[str]:
    threads: list[str] = []
    real = getattr(module, name)

    def recording(**kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(**kwargs)

    monkeypatch.setattr(module, name, recording)
    return threads


def test_the_memory_search_runs_beside_the_knowledge_search(sam: Any, handbook: Any, monkeypatch, settings):
    assert "pool" in connection.settings_dict["OPTIONS"] and not connection.in_atomic_block
    MemoryItemFactory.create(text="Refunds for ACME are paid by bank transfer, never as vouchers.")
    threads = _recording_threads(monkeypatch, pipeline, "memory_retrieve")
    question = "How are refunds paid?"
    with audit_batch():  # as prepare() does: the other thread's event joins the batch
        parallel = pipeline.retrieve(user=sam, question=question, knowledge_bases=[handbook], passages=2)
    assert threads[-1].startswith("parallel-read")
    assert [memory.text for memory in parallel.memories] == [
        "Refunds for ACME are paid by bank transfer, never as vouchers."
    ]
    searched = AuditEvent.objects.filter(action="memory.searched").order_by("-seq").first()
    assert searched is not None and searched.details["memory_ids"] == [parallel.memories[0].memory_id]

    settings.KNOWLEDGE_SEARCH_PARALLEL_LEGS = False
    sequential = pipeline.retrieve(user=sam, question=question, knowledge_bases=[handbook], passages=2)
    assert threads[-1] == "MainThread"
    assert [m.memory_id for m in sequential.memories] == [m.memory_id for m in parallel.memories]
    assert [c.chunk_id for c in sequential.chunks] == [c.chunk_id for c in parallel.chunks]
    assert parallel.chunks[0].document_title == "Refund policy"


def test_a_questions_history_is_read_beside_its_searches(sam: Any, conversation: Any, monkeypatch):
    earlier = MessageFactory.create(conversation=conversation, content="Earlier question about refunds")
    MessageFactory.create(conversation=conversation, role="assistant", content="Earlier answer", reply_to=earlier)
    threads = _recording_threads(monkeypatch, selectors, "history_for")
    built: dict[str, Any] = {}
    real_build = pipeline.build

    def build(**kwargs: Any) -> Any:
        built.update(kwargs)
        return real_build(**kwargs)

    monkeypatch.setattr(pipeline, "build", build)
    pipeline.prepare(user=sam, conversation=conversation, question="And for holidays?")
    assert len(threads) == 1 and threads[0].startswith("parallel-read")
    assert [message.content for message in built["history"]] == ["Earlier question about refunds", "Earlier answer"]
