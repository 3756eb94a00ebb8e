"""bench_assistant's single-user floor: the bare embedding, search SQL and audit write, timed on their own."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditEvent
from portal.assistant.bench.assistant import BENCH_KB_NAME, single_floor
from tests.assistant.factories import knowledge_base_with

pytestmark = pytest.mark.django_db


def test_the_floor_times_each_measured_question_and_writes_one_audit_event_per_question(sam: Any, profile: Any) -> None:
    words = "refunds are paid within fourteen days after the returned goods arrive at the warehouse"
    corpus = knowledge_base_with(name=BENCH_KB_NAME, passages=[("Refunds", words, None)] * 4)
    profile.knowledge_bases.add(corpus)  # the questions are drawn from the benchmark corpus's chunks

    figures = single_floor(user=sam, profile=profile, questions=3, warmup=1)

    assert set(figures) == {"single_floor_p50_ms", "single_floor_p95_ms"}
    assert 0 < figures["single_floor_p50_ms"] <= figures["single_floor_p95_ms"]
    events = AuditEvent.objects.filter(action="assistant.question_asked", details__benchmark="floor")
    assert events.count() == 4  # the warm-up question too: it does the same work, only not counted
