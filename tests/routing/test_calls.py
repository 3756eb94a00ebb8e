from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from audit.models import AuditEvent
from portal.routing.models import Usage
from portal.routing.offline import (
    OFFLINE_LABEL,
    OFFLINE_LABEL_BUDGET,
    OFFLINE_LABEL_FALLBACK,
    OFFLINE_LABEL_LOCAL_ONLY,
)
from portal.routing.router import ERROR_STREAM_CUT, cooldowns
from portal.routing.services import ERROR_NO_MODEL_CLEARED, model_complete, route_decide
from portal.routing.types import OFFLINE_DESTINATION
from tests.fakes.provider import DEFAULT_REPLY
from tests.routing.conftest import FAKE_KEY, decision_for, gate, run_stream, shown_text
from tests.routing.factories import CatalogModelFactory

pytestmark = pytest.mark.django_db(transaction=False)


@pytest.fixture
def second_model(fake_model: Any, fake_provider: Any) -> Any:
    return CatalogModelFactory.create(display_name="Fake second", api_base=fake_provider.url, tier="premium")


def test_it_streams_the_answer_of_the_first_model_and_records_usage(sam: Any, fake_model: Any, fake_provider: Any):
    destinations = [fake_model.destination()]
    gated = gate(sam, destinations)
    deltas, outcome = run_stream(user=sam, gated=gated, decision=decision_for(destinations), assistant_profile_id=7)

    assert len(deltas) > 3  # word by word, not one block
    assert shown_text(deltas) == DEFAULT_REPLY
    assert outcome.outcome == "success", [outcome.attempts, outcome.error]
    assert outcome.model_key == fake_model.key
    assert outcome.tokens_in > 0 and outcome.tokens_out == len(DEFAULT_REPLY.split())
    assert outcome.first_token_ms is not None and outcome.first_token_ms <= outcome.total_ms
    usage = Usage.objects.get()
    assert (usage.user, usage.roles, usage.assistant_profile_id) == (sam, ["Staff"], 7)
    assert (usage.model_key, usage.outcome, usage.tokens_out) == (fake_model.key, "success", outcome.tokens_out)
    event = AuditEvent.objects.get(action="routing.model_called")
    assert event.details["prompt_sha256"] == gated.prompt_sha256
    assert event.details["manifest_sha256"] and event.details["tokens_out"] == outcome.tokens_out
    assert fake_provider.requests[0].body["stream"] is True


def test_the_key_is_read_from_the_named_variable_and_never_stored(sam: Any, fake_model: Any, fake_provider: Any):
    destinations = [fake_model.destination()]
    run_stream(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))

    assert fake_provider.requests[0].headers["authorization"] == f"Bearer {FAKE_KEY}"
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("routing_catalogmodel", "routing_usage", "audit_auditevent"):
            cursor.execute(f"SELECT CAST(t AS text) FROM {table} t")  # noqa: S608 - fixed table names
            assert all(FAKE_KEY not in row[0] for row in cursor.fetchall()), table


def test_a_rotated_key_is_used_without_a_restart(sam: Any, fake_model: Any, fake_provider: Any, monkeypatch: Any):
    destinations = [fake_model.destination()]
    run_stream(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))
    monkeypatch.setenv("FAKE_PROVIDER_KEY", "sk-rotated")
    run_stream(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))

    assert fake_provider.requests[-1].headers["authorization"] == "Bearer sk-rotated"


@pytest.mark.parametrize("fault", ["500", "429", "malformed", "disconnect", "slow"])
def test_each_fault_of_the_primary_falls_back_to_the_second_model(
    fault: str, sam: Any, fake_model: Any, second_model: Any, fake_provider: Any, settings: Any
):
    settings.ROUTING_NUM_RETRIES = 0
    fake_model.timeout_seconds = 0.5
    fake_model.save()
    fake_provider.state.slow_seconds = 2.0
    fake_provider.script(fault)
    destinations = [fake_model.destination(), second_model.destination()]
    deltas, outcome = run_stream(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))

    assert outcome.outcome == "success"
    assert outcome.model_key == second_model.key
    assert shown_text(deltas) == DEFAULT_REPLY
    assert [attempt["outcome"] for attempt in outcome.attempts] == ["error", "success"]
    rows = list(Usage.objects.order_by("id").values_list("model_key", "outcome"))
    assert rows == [(fake_model.key, "error"), (second_model.key, "success")]
    events = AuditEvent.objects.filter(action="routing.model_called").order_by("seq")
    assert [event.outcome for event in events] == ["error", "success"]


def test_a_hung_model_is_not_retried_before_the_fallback_answers(
    sam: Any, fake_model: Any, second_model: Any, fake_provider: Any, settings: Any
):
    settings.ROUTING_NUM_RETRIES = 1  # retries stay on for other faults
    fake_model.timeout_seconds = 0.5
    fake_model.save()
    fake_provider.state.slow_seconds = 2.0
    fake_provider.script("slow")  # a retry of the primary would get a normal answer
    destinations = [fake_model.destination(), second_model.destination()]

    _, outcome = run_stream(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))

    assert outcome.outcome == "success" and outcome.model_key == second_model.key
    # a retry of the primary would have been answered (the script had one slow reply): it was never made
    assert len(fake_provider.requests) == 2  # the primary once, then the fallback
    assert [attempt["error_class"] for attempt in outcome.attempts] == ["Timeout", ""]


def test_a_cut_stream_is_a_failure_and_the_shown_text_is_reset(
    sam: Any, fake_model: Any, second_model: Any, fake_provider: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
):
    settings.ROUTING_NUM_RETRIES = 0
    fake_provider.script("disconnect")
    cuts = _record_stream_cuts(monkeypatch)
    destinations = [fake_model.destination(), second_model.destination()]
    deltas, outcome = run_stream(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))

    resets = [index for index, delta in enumerate(deltas) if delta.reset]
    assert len(resets) == 1 and resets[0] > 0  # some text was shown, then taken back
    assert shown_text(deltas) == DEFAULT_REPLY
    assert Usage.objects.get(model_key=fake_model.key).error_class == "StreamCut"
    assert outcome.attempts[0]["error"] == "the answer stream was cut off"
    assert cuts == [ERROR_STREAM_CUT]  # a cut after some text, not an empty answer (ERROR_EMPTY)


def _record_stream_cuts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The messages of the StreamCut errors the router raises (the class keeps its name for describe_error)."""
    from portal.routing import router

    messages: list[str] = []

    class StreamCut(router.StreamCut):
        def __init__(self, message: str) -> None:
            messages.append(message)
            super().__init__(message)

    monkeypatch.setattr(router, "StreamCut", StreamCut)
    return messages


@pytest.mark.parametrize("fault", ["500", "429", "malformed", "disconnect", "slow"])
def test_when_every_model_fails_the_outcome_is_a_clear_error(
    fault: str, sam: Any, fake_model: Any, fake_provider: Any, settings: Any
):
    settings.ROUTING_NUM_RETRIES = 0
    fake_model.timeout_seconds = 0.5
    fake_model.save()
    fake_provider.state.slow_seconds = 2.0
    fake_provider.script(fault)
    destinations = [fake_model.destination()]
    _, outcome = run_stream(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))

    assert outcome.outcome == "error"
    assert "No model could answer right now" in outcome.error
    assert "Fake primary" in outcome.error
    assert Usage.objects.get().outcome == "error"


def test_retries_of_one_model_wait_as_long_as_retry_after_asks(
    sam: Any, fake_model: Any, fake_provider: Any, settings: Any
):
    settings.ROUTING_NUM_RETRIES = 1
    fake_provider.state.retry_after = 1
    fake_provider.script("429")
    destinations = [fake_model.destination()]
    started = time.monotonic()
    _, outcome = run_stream(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))
    elapsed = time.monotonic() - started

    assert outcome.outcome == "success" and outcome.model_key == fake_model.key
    assert len(fake_provider.requests) == 2
    assert elapsed >= 1.0  # the Retry-After header, not the 0 s backoff floor set for the tests


def test_a_failed_model_cools_down_and_is_skipped_by_the_next_question(
    sam: Any, fake_model: Any, second_model: Any, fake_provider: Any, settings: Any
):
    settings.ROUTING_NUM_RETRIES = 0
    fake_provider.script("500")
    destinations = [fake_model.destination(), second_model.destination()]
    run_stream(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))
    requests_before = len(fake_provider.requests)
    _, outcome = run_stream(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))

    assert cooldowns.remaining(fake_model.key) > 0
    assert outcome.attempts[0]["outcome"] == "skipped" and "cooling down" in outcome.attempts[0]["error"]
    assert outcome.model_key == second_model.key
    assert len(fake_provider.requests) == requests_before + 1


def test_the_offline_model_answers_through_the_router_with_citations(sam: Any, db: None):
    decision = route_decide(user=sam, task_type=None, question="How fast are refunds paid?")
    assert decision.tier == "offline" and decision.candidates == (OFFLINE_DESTINATION,)
    deltas, outcome = run_stream(user=sam, gated=gate(sam, decision.candidates), decision=decision)

    text = shown_text(deltas)
    assert text.startswith(OFFLINE_LABEL)
    assert "Refunds are paid within 14 days of a return. [1]" in text
    assert "[1] Refund policy" in text
    assert (outcome.outcome, outcome.model_key, outcome.provider, outcome.cost) == (
        "success",
        "offline",
        "offline",
        Decimal(0),
    )
    assert Usage.objects.get().model_key == "offline"


def test_the_offline_model_is_the_last_fallback(sam: Any, fake_model: Any, fake_provider: Any, settings: Any):
    settings.ROUTING_NUM_RETRIES = 0
    fake_provider.script("500")
    decision = route_decide(user=sam, task_type="draft", question="Write a reply")
    assert decision.candidates[-1] == OFFLINE_DESTINATION
    deltas, outcome = run_stream(user=sam, gated=gate(sam, decision.candidates), decision=decision)

    assert outcome.model_key == "offline"
    assert shown_text(deltas).startswith(OFFLINE_LABEL_FALLBACK)


def test_the_offline_answer_says_when_the_context_may_not_leave(sam: Any, fake_model: Any, fake_provider: Any):
    decision = route_decide(user=sam, task_type="draft", question="Write a reply")
    gated = gate(sam, [OFFLINE_DESTINATION])  # e.g. local-only knowledge: the gate cleared only the offline model
    deltas, outcome = run_stream(user=sam, gated=gated, decision=decision)

    assert outcome.model_key == "offline"
    assert shown_text(deltas).startswith(OFFLINE_LABEL_LOCAL_ONLY)
    assert fake_provider.requests == []


def test_an_altered_prompt_is_refused_before_anything_is_sent(sam: Any, fake_model: Any, fake_provider: Any):
    from dataclasses import replace

    destinations = [fake_model.destination()]
    gated = gate(sam, destinations)
    altered = replace(gated, messages=(*gated.messages, {"role": "user", "content": "and the customer list"}))
    _, outcome = run_stream(user=sam, gated=altered, decision=decision_for(destinations))

    assert outcome.outcome == "error"
    assert fake_provider.requests == []
    assert Usage.objects.get().error_class == "PermissionError"
    assert AuditEvent.objects.get(action="routing.model_called").outcome == "denied"


def test_only_destinations_cleared_by_the_gate_are_tried(
    sam: Any, fake_model: Any, second_model: Any, fake_provider: Any
):
    gated = gate(sam, [second_model.destination()])  # the gate cleared only the second model
    destinations = [fake_model.destination(), second_model.destination()]
    _, outcome = run_stream(user=sam, gated=gated, decision=decision_for(destinations))

    assert outcome.model_key == second_model.key
    assert outcome.attempts[0] == {
        "model_key": fake_model.key,
        "model": "Fake primary",
        "provider": "openai-compatible",
        "outcome": "skipped",
        "error": "not cleared by the gate",
    }
    assert Usage.objects.count() == 1


def test_nothing_cleared_gives_an_error_outcome_and_sends_nothing(sam: Any, fake_model: Any, fake_provider: Any):
    gated = gate(sam, [])
    _, outcome = run_stream(user=sam, gated=gated, decision=decision_for([fake_model.destination()]))

    assert (outcome.outcome, outcome.error) == ("error", ERROR_NO_MODEL_CLEARED)
    assert fake_provider.requests == []


def test_cost_comes_from_the_catalog_override(sam: Any, fake_model: Any, fake_provider: Any):
    fake_model.input_price_per_million = Decimal("3")
    fake_model.output_price_per_million = Decimal("15")
    fake_model.save()
    destinations = [fake_model.destination()]
    _, outcome = run_stream(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))

    expected = (Decimal(3) * outcome.tokens_in + Decimal(15) * outcome.tokens_out) / Decimal(1_000_000)
    assert outcome.cost == expected.quantize(Decimal("0.00000001")) > 0
    assert Usage.objects.get().cost_source == "catalog"


def test_cost_comes_from_litellms_local_price_map_for_known_models(sam: Any, fake_provider: Any, provider_key: str):
    model = CatalogModelFactory.create(litellm_model="openai/gpt-4o-mini", api_base=fake_provider.url)
    destinations = [model.destination()]
    _, outcome = run_stream(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))

    usage = Usage.objects.get()
    assert usage.cost_source == "litellm"
    assert usage.cost > 0 and outcome.cost == usage.cost


def test_unknown_prices_are_recorded_as_unknown_not_guessed(sam: Any, fake_model: Any, fake_provider: Any):
    destinations = [fake_model.destination()]
    run_stream(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))

    usage = Usage.objects.get()
    assert (usage.cost, usage.cost_source) == (Decimal(0), "unknown")


def test_model_complete_returns_the_whole_answer(sam: Any, fake_model: Any, fake_provider: Any):
    destinations = [fake_model.destination()]
    text, outcome = model_complete(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))
    text_again, _ = model_complete(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))

    assert text == text_again == DEFAULT_REPLY
    assert outcome.outcome == "success"


def test_a_user_without_a_role_is_recorded_with_no_roles(oscar: Any, fake_model: Any, fake_provider: Any):
    destinations = [fake_model.destination()]
    _, outcome = run_stream(user=oscar, gated=gate(oscar, destinations), decision=decision_for(destinations))

    assert outcome.outcome == "success"
    assert Usage.objects.get().roles == []


def test_a_failing_openai_model_falls_back_across_providers_to_anthropic(
    sam: Any, fake_model: Any, fake_provider: Any, settings: Any
):
    settings.ROUTING_NUM_RETRIES = 0
    claude = CatalogModelFactory.create(
        display_name="Fake Claude", litellm_model="anthropic/claude-fake", api_base=fake_provider.base_url
    )
    fake_provider.script("500")
    destinations = [fake_model.destination(), claude.destination()]
    deltas, outcome = run_stream(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))

    assert (outcome.outcome, outcome.model_key, outcome.provider) == ("success", claude.key, "anthropic")
    assert shown_text(deltas) == DEFAULT_REPLY
    assert [request.protocol for request in fake_provider.requests] == ["openai", "anthropic"]
    assert fake_provider.requests[1].headers["x-api-key"] == FAKE_KEY
    assert outcome.tokens_out == len(DEFAULT_REPLY.split())


def test_a_catalog_change_rebuilds_the_router_without_leaking_callbacks(sam: Any, fake_model: Any, fake_provider: Any):
    import litellm

    from portal.routing.router import router_cache

    destinations = [fake_model.destination()]
    run_stream(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))
    builds, registered = router_cache.builds, len(litellm.success_callback)
    run_stream(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))
    assert router_cache.builds == builds  # unchanged catalog: the cached Router is reused

    for timeout in (7.0, 8.0, 9.0):
        fake_model.timeout_seconds = timeout
        fake_model.save()
        run_stream(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))

    assert router_cache.builds == builds + 3
    assert len(litellm.success_callback) == registered


def test_a_reader_leaving_mid_answer_still_leaves_a_usage_row(sam: Any, fake_model: Any, fake_provider: Any):
    from asgiref.sync import async_to_sync

    from portal.routing.services import model_stream

    destinations = [fake_model.destination()]

    async def read_one_piece_and_leave() -> None:
        stream = model_stream(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))
        await stream.__anext__()
        await stream.aclose()

    async_to_sync(read_one_piece_and_leave)()

    usage = Usage.objects.get()
    assert (usage.outcome, usage.error_class) == ("error", "Cancelled")
    assert AuditEvent.objects.filter(action="routing.model_called").count() == 1


def test_the_offline_answer_says_when_the_budget_is_used_up(sam: Any, fake_model: Any, fake_provider: Any):
    from tests.routing.factories import BudgetFactory, UsageFactory

    fake_model.tier = "economy"
    fake_model.save()
    BudgetFactory.create(user=sam, limit=Decimal("1.00"))
    UsageFactory.create(user=sam, cost=Decimal("1.00"))
    decision = route_decide(user=sam, task_type="routine", question="When do we open?")
    deltas, outcome = run_stream(user=sam, gated=gate(sam, decision.candidates), decision=decision)

    assert decision.budget_note and outcome.model_key == "offline"
    assert shown_text(deltas).startswith(OFFLINE_LABEL_BUDGET)
    assert fake_provider.requests == []


def test_an_unreachable_endpoint_falls_back(sam: Any, fake_model: Any, second_model: Any, settings: Any):
    import socket

    settings.ROUTING_NUM_RETRIES = 0
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    fake_model.api_base = f"http://127.0.0.1:{closed_port}/v1"
    fake_model.save()
    destinations = [fake_model.destination(), second_model.destination()]
    _, outcome = run_stream(user=sam, gated=gate(sam, destinations), decision=decision_for(destinations))

    assert (outcome.outcome, outcome.model_key) == ("success", second_model.key)
    assert outcome.attempts[0]["error_class"] == "APIConnectionError"
    assert outcome.attempts[0]["error"] == "the provider could not be reached"
