"""Each stage of the ask pipeline alone, then the flow through them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404
from guardian.shortcuts import remove_perm

from audit.models import AuditEvent
from governance import gate
from governance.gate import Destination, PromptPart, egress_gate
from portal.assistant import pipeline, selectors, services
from portal.assistant.models import Message, MessageStatus
from portal.customers.selectors import CustomerContext
from portal.memory.selectors import RetrievedMemory
from portal.routing.types import OFFLINE_DESTINATION, CallOutcome, RouteDecision
from tests.assistant.conftest import REFUND_TEXT
from tests.assistant.factories import ConversationFactory, MessageFactory, knowledge_base_with
from tests.assistant.helpers import run_answer, stored_answer, streamed_text
from tests.governance.helpers import assert_one_blocked_event, audit_head, blocked_and_audited

pytestmark = pytest.mark.django_db


def decision(*destinations: Destination) -> RouteDecision:
    return RouteDecision(task_type="routine", tier="economy", candidates=tuple(destinations), reason="test")


# ---- authorize
def test_authorize_gives_the_profile_and_only_the_knowledge_bases_the_user_may_read(sam: Any, conversation: Any):
    secret = knowledge_base_with(name="Board minutes", passages=[("Minutes", "Secret plans.", None)], readers=[])
    conversation.profile.knowledge_bases.add(secret)

    authorization = pipeline.authorize(user=sam, conversation=conversation)

    assert authorization.profile == conversation.profile
    assert [kb.name for kb in authorization.knowledge_bases] == ["Handbook"]
    assert authorization.withheld_knowledge_bases == 1


def test_a_profile_on_every_readable_base_searches_new_bases_as_soon_as_they_are_granted(
    sam: Any, alice: Any, conversation: Any
):
    profile = conversation.profile
    profile.all_readable_knowledge = True
    profile.save()
    secret = knowledge_base_with(name="Board minutes", passages=[("Minutes", "Secret plans.", None)], readers=[])
    profile.knowledge_bases.add(secret)  # chosen by name too, but Sam may not read it
    assert [kb.name for kb in pipeline.authorize(user=sam, conversation=conversation).knowledge_bases] == ["Handbook"]

    knowledge_base_with(name="Travel", passages=[("Travel", "Trains are preferred.", None)], readers=["Staff"])
    authorization = pipeline.authorize(user=sam, conversation=conversation)  # no profile edit in between
    assert [kb.name for kb in authorization.knowledge_bases] == ["Handbook", "Travel"]
    assert authorization.withheld_knowledge_bases == 1
    found = pipeline.retrieve(user=sam, question="Are trains preferred?", knowledge_bases=authorization.knowledge_bases)
    assert any("Trains are preferred." in chunk.text for chunk in found.chunks)
    # the base's page names the profile for whoever may use it
    consumers = selectors.profiles_using_knowledge_base(
        knowledge_base_id=authorization.knowledge_bases[1].pk, viewer=sam
    )
    assert profile.name in consumers.names


@pytest.mark.parametrize("label", ["confidential", "local_only"])
def test_every_readable_base_leaves_out_bases_whose_passages_may_not_leave_unless_chosen(
    sam: Any, conversation: Any, label: str
):
    """Staff's default policy withholds confidential passages and keeps local-only ones local: a profile on
    every readable base searches such a base only when it is chosen by name, so reading it does not send
    every question to the offline model."""
    profile = conversation.profile
    profile.all_readable_knowledge = True
    profile.save()
    kept = knowledge_base_with(name="People records", passages=[("People", "Salaries are reviewed.", None)])
    kept.classification = label
    kept.save(update_fields=["classification"])
    knowledge_base_with(name="Travel", passages=[("Travel", "Trains are preferred.", None)])

    names = [kb.name for kb in pipeline.authorize(user=sam, conversation=conversation).knowledge_bases]
    assert names == ["Handbook", "Travel"]

    profile.knowledge_bases.add(kept)  # chosen: searched, and the gate decides what of it leaves
    names = [kb.name for kb in pipeline.authorize(user=sam, conversation=conversation).knowledge_bases]
    assert names == ["Handbook", "People records", "Travel"]


def test_authorize_refuses_a_withdrawn_profile(sam: Any, conversation: Any):
    remove_perm("assistant.use_assistantprofile", Group.objects.get(name="Staff"), conversation.profile)

    with pytest.raises(PermissionDenied):
        pipeline.authorize(user=sam, conversation=conversation)


def test_authorize_refuses_users_without_the_assistant_permission(oscar: Any, profile: Any):
    conversation = ConversationFactory.create(owner=oscar, profile=profile)

    with pytest.raises(PermissionDenied):
        pipeline.authorize(user=oscar, conversation=conversation)


def test_authorize_hides_other_peoples_conversations(alice: Any, conversation: Any):
    conversation.profile.knowledge_bases.clear()
    with pytest.raises(Http404):
        pipeline.authorize(user=alice, conversation=conversation)


def test_a_question_is_embedded_ahead_only_once_it_may_be_asked(
    sam: Any, oscar: Any, profile: Any, conversation: Any, monkeypatch: pytest.MonkeyPatch
):
    ahead: list[str] = []
    monkeypatch.setattr(pipeline, "knowledge_retrieve_ahead", ahead.append)
    refused = ConversationFactory.create(owner=oscar, profile=profile)  # oscar may not use the assistant
    with pytest.raises(PermissionDenied):
        pipeline.prepare(user=oscar, conversation=refused, question="When are refunds paid?")
    assert ahead == []  # no work for a question that may not be asked
    pipeline.prepare(user=sam, conversation=conversation, question="When are refunds paid?")
    assert ahead == ["When are refunds paid?"]


# ---- route
def test_route_uses_the_profiles_task_type(sam: Any, profile: Any):
    profile.task_type = "analyze"
    route = pipeline.route(user=sam, profile=profile, question="hello")

    assert route.task_type == "analyze"
    assert "assistant profile" in route.reason


def test_route_classifies_the_question_when_the_profile_is_automatic(sam: Any, profile: Any):
    profile.task_type = ""
    route = pipeline.route(user=sam, profile=profile, question="Summarize the refund policy in three bullet points.")

    assert route.task_type == "summarize"
    assert route.reason.startswith("summarize: asks for a summary (matched 'summarize')")
    draft = pipeline.route(user=sam, profile=profile, question="Draft a reply to the customer's letter.")
    assert draft.task_type == "draft" and "assistant profile" not in draft.reason
    assert pipeline.route(user=sam, profile=profile, question="When are refunds paid?").task_type == "routine"


# ---- retrieve
def test_retrieve_finds_passages_of_the_profiles_readable_knowledge_bases(sam: Any, handbook: Any):
    context = pipeline.retrieve(user=sam, question="When are refunds paid?", knowledge_bases=[handbook], passages=2)

    assert context.chunks[0].document_title == "Refund policy"
    assert context.chunks[0].text == REFUND_TEXT
    assert context.chunks[0].url.endswith("#page-3")


def test_retrieve_searches_nothing_when_the_profile_has_no_knowledge_base(sam: Any, handbook: Any):
    assert pipeline.retrieve(user=sam, question="When are refunds paid?", knowledge_bases=[]).chunks == ()


def test_retrieve_adds_memory_customer_context_and_predictions(sam: Any, monkeypatch: pytest.MonkeyPatch):
    memory = RetrievedMemory(memory_id=4, text="Prefers e-mail.", kind="fact", scope="customer", score=0.9, url="/")
    customer = CustomerContext(customer_id=9, name="ACME", fields={"email": "ops@acme.test"}, url="/customers/9/")
    calls: dict[str, Any] = {}

    def memory_retrieve(**kwargs: Any) -> list[RetrievedMemory]:
        calls["memory"] = kwargs
        return [memory]

    def customer_context(**kwargs: Any) -> CustomerContext:
        calls["customer"] = kwargs
        return customer

    def customer_prediction_fields(**kwargs: Any) -> dict[str, str]:
        calls["predictions"] = kwargs
        return {"predictions": "churn risk: low"}

    monkeypatch.setattr(pipeline, "memory_retrieve", memory_retrieve)
    monkeypatch.setattr(pipeline, "customer_context", customer_context)
    monkeypatch.setattr(pipeline, "customer_prediction_fields", customer_prediction_fields)

    context = pipeline.retrieve(user=sam, question="Contact?", knowledge_bases=[], customer_id=9)

    assert context.memories == (memory,) and context.customer == customer
    assert context.customer_predictions == {"predictions": "churn risk: low"}
    assert calls["memory"]["customer_id"] == 9 and calls["customer"] == {"user": sam, "customer_id": 9}
    assert calls["predictions"] == {"user": sam, "customer_id": 9}


def test_retrieve_answers_without_a_customer_the_user_may_no_longer_see(sam: Any, monkeypatch: pytest.MonkeyPatch):
    def customer_context(**kwargs: Any) -> CustomerContext:
        raise PermissionDenied("restricted since the conversation began")

    monkeypatch.setattr(pipeline, "customer_context", customer_context)

    context = pipeline.retrieve(user=sam, question="Contact?", knowledge_bases=[], customer_id=9)

    assert context.customer is None and context.customer_predictions == {}


# ---- build
def test_build_orders_instructions_history_passages_memory_customer_and_question(sam: Any, conversation: Any, handbook):
    earlier_question = MessageFactory.create(conversation=conversation, content="Earlier question")
    earlier_answer = MessageFactory.create(conversation=conversation, role="assistant", content="Earlier answer")
    MessageFactory.create(
        conversation=conversation, role="assistant", content="", status=MessageStatus.ERROR, error="x"
    )
    now = MessageFactory.create(conversation=conversation, content="When are refunds paid?")
    chunks = pipeline.retrieve(user=sam, question="refunds", knowledge_bases=[handbook], passages=2).chunks

    memory = RetrievedMemory(memory_id=4, text="Prefers e-mail.", kind="fact", scope="customer", score=0.9, url="/")
    customer = CustomerContext(customer_id=9, name="ACME", fields={"email": "ops@acme.test"})

    parts = pipeline.build(
        profile=conversation.profile,
        history=selectors.history_for(conversation=conversation, limit=pipeline.HISTORY_MESSAGES, before=now),
        context=pipeline.RetrievedContext(chunks=chunks, memories=(memory,), customer=customer),
        question=now.content,
    )

    assert [part.kind for part in parts] == [
        "instructions", "history", "history", "chunk", "chunk", "memory", "customer", "question",
    ]  # fmt: skip
    assert parts[0].role == "system" and "Answer briefly." in parts[0].text
    assert [(parts[1].role, parts[1].text), (parts[2].role, parts[2].text)] == [
        ("user", earlier_question.content), ("assistant", earlier_answer.content),
    ]  # fmt: skip
    assert chunks[0].pages_label  # the handbook is a PDF: the model is told which pages a passage is from
    assert parts[3].text.startswith(f"[1] Source: {chunks[0].document_title}, {chunks[0].pages_label}\n")
    assert parts[3].source["chunk_id"] == chunks[0].chunk_id
    assert parts[6].source == {"customer_id": 9, "field": "email"}
    assert parts[-1] == PromptPart(kind="question", text="When are refunds paid?", source={})


def test_a_local_only_memory_is_labelled_so_the_gate_keeps_it_on_the_server(sam: Any, conversation: Any) -> None:
    memory = RetrievedMemory(
        memory_id=5, text="The merger code name is Bluebird.", kind="fact", scope="organisation", score=1.0, url="/",
        sensitivity="local_only",
    )  # fmt: skip

    parts = pipeline.build(
        profile=conversation.profile,
        history=[],
        context=pipeline.RetrievedContext(chunks=(), memories=(memory,), customer=None),
        question="What is the code name?",
    )
    (memory_part,) = [part for part in parts if part.kind == "memory"]
    assert memory_part.source["classification"] == "local_only"
    cloud = Destination(key="model:1", provider="openai")
    with blocked_and_audited(sam, "memory-label", match="local-only knowledge"):
        egress_gate(user=sam, conversation_key="memory-label", destinations=[cloud], parts=parts)


# ---- egress
def test_egress_passes_the_candidates_to_the_gate_and_returns_the_sealed_prompt(sam: Any, conversation: Any):
    parts = [PromptPart(kind="question", text="Hi")]
    question = services.question_store(actor=sam, conversation=conversation, text="Hi")
    gated = pipeline.egress(
        user=sam, conversation=conversation, question=question, decision=decision(OFFLINE_DESTINATION), parts=parts
    )

    assert gated.destinations == ("offline",)
    gate.verify_sealed(gated, "offline")
    assert [part["kind"] for part in gated.manifest["parts"]] == ["question"]
    # the gate audits its own decision, about the question
    event = AuditEvent.objects.get(action="governance.egress_decided")
    assert (event.object_type, event.object_id) == ("assistant.message", str(question.pk))
    assert event.details["prompt_sha256"] == gated.prompt_sha256


def test_egress_refuses_when_no_destination_is_cleared(sam: Any, conversation: Any, monkeypatch: pytest.MonkeyPatch):
    original = gate.egress_gate

    def clear_nothing(**kwargs: Any) -> Any:
        gated = original(**kwargs)
        return gate.GatedPrompt(gated.messages, gated.manifest, (), gated.seal)

    monkeypatch.setattr(gate, "egress_gate", clear_nothing)
    question = services.question_store(actor=sam, conversation=conversation, text="Hi")
    with pytest.raises(gate.EgressBlocked, match="nothing was sent"):
        pipeline.egress(user=sam, conversation=conversation, question=question, decision=decision(OFFLINE_DESTINATION),
                        parts=[PromptPart(kind="question", text="Hi")])  # fmt: skip


# ---- store and audit
def test_answer_store_keeps_answer_citations_route_manifest_and_usage_and_audits_it(sam: Any, conversation: Any):
    question = services.question_store(actor=sam, conversation=conversation, text="When are refunds paid?")
    gated = gate.egress_gate(user=sam, conversation_key="c", destinations=[OFFLINE_DESTINATION],
                             parts=[PromptPart(kind="question", text="x")])  # fmt: skip
    citation = pipeline.Citation(1, 11, 5, "Refund policy", "Handbook", 3, "/knowledge/documents/5/#page-3", 0.9)
    outcome = CallOutcome("offline", "Offline", "offline", "success", "", 10, 5, Decimal("0.01"), 12.0, 40.0, [])

    answer = services.answer_store(
        actor=sam, question=question, text="Within 14 days [1].", decision=decision(OFFLINE_DESTINATION),
        gated=gated, citations=[citation], usage=pipeline.outcome_as_usage(outcome),
    )  # fmt: skip

    answer.refresh_from_db()
    assert answer.citations[0]["cited"] is True and answer.citations[0]["url"] == citation.url
    assert answer.route["candidates"] == ["offline"] and answer.manifest == gated.manifest
    assert answer.usage["cost"] == "0.01" and answer.usage["tokens_out"] == 5
    event = AuditEvent.objects.get(action="assistant.answer_stored")
    assert (event.object_type, event.object_id) == ("assistant.message", str(answer.pk))
    assert event.details["chunk_ids"] == [11] and event.details["cited"] == [1]
    assert event.details["manifest_sha256"] == gated.manifest_sha256 == answer_manifest_sha256(answer.manifest)
    assert event.details["prompt_sha256"] == gated.prompt_sha256
    assert AuditEvent.objects.filter(action="assistant.question_asked", object_id=str(question.pk)).exists()


def answer_manifest_sha256(manifest: dict[str, Any]) -> str:
    import hashlib
    import json

    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def test_the_answer_and_its_audit_event_roll_back_together(sam: Any, conversation: Any):
    question = services.question_store(actor=sam, conversation=conversation, text="Q")
    with pytest.raises(RuntimeError), transaction.atomic():
        services.answer_store(actor=sam, question=question, text="A")
        raise RuntimeError("the store failed after the answer was written")

    assert not Message.objects.filter(role="assistant").exists()
    assert not AuditEvent.objects.filter(action="assistant.answer_stored").exists()


# ---- the whole flow, offline (no cloud model configured)
def test_the_offline_model_answers_from_the_passages_with_citations(sam: Any, conversation: Any):
    events = run_answer(user=sam, conversation=conversation, question="When are refunds paid?")

    assert isinstance(events[0], pipeline.QuestionStored)
    answer = stored_answer(events)
    assert answer.status == MessageStatus.COMPLETE, answer.error
    assert answer.usage["provider"] == "offline" and answer.route["tier"] == "offline"
    assert "14 days" in answer.content and streamed_text(events) == answer.content
    assert any(citation["cited"] and citation["document_title"] == "Refund policy" for citation in answer.citations)
    assert answer.usage["local_overhead_ms"] > 0


def test_a_block_by_the_gate_stores_the_question_and_a_clear_message_and_sends_nothing(
    sam: Any, conversation: Any, fake_model: Any, fake_provider: Any, monkeypatch: pytest.MonkeyPatch
):
    def refuse(**kwargs: Any) -> Any:
        raise gate.EgressBlocked("Customer data may not leave for this role.")

    monkeypatch.setattr(gate, "egress_gate", refuse)
    events = run_answer(user=sam, conversation=conversation, question="What is the card number of ACME?")

    answer = stored_answer(events)
    assert answer.status == MessageStatus.BLOCKED
    assert answer.error == "Customer data may not leave for this role."
    assert fake_provider.requests == []
    assert conversation.messages.filter(role="user", content__startswith="What is the card").exists()
    assert AuditEvent.objects.get(action="assistant.answer_stored").outcome == "denied"


def test_a_card_number_in_an_earlier_turn_stops_the_cloud_call_of_the_next_question(
    sam: Any, conversation: Any, fake_model: Any, fake_provider: Any, settings: Any
):
    """The earlier question goes back to the model as history; the policy blocks cards, so nothing is sent
    (withholding that turn and sending the rest would pass off an answer without its context)."""
    settings.ROUTING_OFFLINE_FALLBACK = False  # only the cloud model is a candidate
    card = "4111 1111 1111 1111"
    MessageFactory.create(conversation=conversation, role="user", content=f"Is my card {card} on file?")
    MessageFactory.create(conversation=conversation, role="assistant", content="I cannot look up cards.")

    before = audit_head()
    answer = stored_answer(run_answer(user=sam, conversation=conversation, question="When are refunds paid?"))

    assert answer.status == MessageStatus.BLOCKED
    assert "your conversation history contains PAYMENT_CARD" in answer.error and card not in answer.error
    assert fake_provider.requests == []
    key = f"assistant-conversation-{conversation.pk}"
    question = ("assistant.message", str(answer.reply_to_id))  # the gate's event is about the question
    assert_one_blocked_event(since=before, user=sam, conversation_key=key, reason=answer.error, subject=question)


def test_a_vault_key_that_cannot_open_the_conversations_vault_stops_the_answer(
    sam: Any, conversation: Any, fake_model: Any, fake_provider: Any, settings: Any
):
    from cryptography.fernet import Fernet

    from governance.gate import ERROR_VAULT_FAILED

    key = f"assistant-conversation-{conversation.pk}"
    settings.GOVERNANCE_VAULT_KEY = Fernet.generate_key().decode()
    egress_gate(user=sam, conversation_key=key, destinations=[fake_model.destination()],
                parts=[PromptPart(kind="question", text="Mail refunds@example.org")])  # fmt: skip
    settings.GOVERNANCE_VAULT_KEY = Fernet.generate_key().decode()  # valid, but not the vault's key
    before = audit_head()

    answer = stored_answer(run_answer(user=sam, conversation=conversation, question="When are refunds paid?"))

    assert answer.status == MessageStatus.BLOCKED and answer.error == ERROR_VAULT_FAILED
    assert fake_provider.requests == []
    question = ("assistant.message", str(answer.reply_to_id))
    assert_one_blocked_event(since=before, user=sam, conversation_key=key, reason=ERROR_VAULT_FAILED, subject=question)


def test_an_unexpected_failure_before_the_call_fails_closed(
    sam: Any, conversation: Any, fake_model: Any, fake_provider: Any, monkeypatch: pytest.MonkeyPatch
):
    def broken(**kwargs: Any) -> Any:
        raise ValueError("classifier exploded")

    monkeypatch.setattr(gate, "egress_gate", broken)
    answer = stored_answer(run_answer(user=sam, conversation=conversation, question="Hello?"))

    assert answer.status == MessageStatus.ERROR and answer.error == pipeline.ERROR_PREPARE_FAILED
    assert fake_provider.requests == []


def test_the_first_question_names_the_conversation(sam: Any, conversation: Any):
    conversation.title = services.DEFAULT_TITLE
    conversation.save()
    services.question_store(actor=sam, conversation=conversation, text="  When are refunds paid?  ")

    conversation.refresh_from_db()
    assert conversation.title == "When are refunds paid?"


def test_a_reader_who_leaves_mid_stream_still_leaves_the_partial_answer_stored(
    sam: Any, conversation: Any, fake_model: Any, fake_provider: Any
):
    from asgiref.sync import async_to_sync

    async def read_two_pieces_then_leave() -> str:
        events = pipeline.answer(user=sam, conversation=conversation, question="When are refunds paid?")
        seen = ""
        async for event in events:
            if isinstance(event, pipeline.AnswerDelta):
                seen += event.text
                if len(seen.split()) >= 2:
                    break
        await events.aclose()  # type: ignore[attr-defined]
        return seen

    seen = async_to_sync(read_two_pieces_then_leave)()

    answer = conversation.messages.get(role="assistant")
    assert answer.status == MessageStatus.STOPPED and answer.error == pipeline.ERROR_STOPPED
    assert answer.content == seen and seen
    assert conversation.messages.filter(role="user").count() == 1


def test_a_conversation_about_a_customer_gives_the_gate_the_customers_fields(sam: Any, profile: Any):
    from tests.customers.factories import CustomerFactory

    customer = CustomerFactory.create(name="Ada Lovelace", organisation="Analytical Engines Ltd")
    conversation = services.conversation_create(actor=sam, profile=profile, customer_id=customer.pk)

    context = pipeline.retrieve(user=sam, question="How do I reach her?", knowledge_bases=[], customer_id=customer.pk)
    parts = pipeline.build(profile=profile, history=[], context=context, question="How do I reach her?")

    customer_parts = [part for part in parts if part.kind == "customer"]
    assert customer_parts and all(part.source["customer_id"] == customer.pk for part in customer_parts)
    assert any("ada@example.test" in part.text or "lovelace@example.test" in part.text for part in customer_parts)
    assert conversation.customer_id == customer.pk


def test_the_route_and_the_egress_decision_are_audited_as_decisions(sam: Any, conversation: Any):
    events = run_answer(user=sam, conversation=conversation, question="When are refunds paid?")
    answer = stored_answer(events)
    question_id = str(answer.reply_to_id)

    route_event = AuditEvent.objects.get(action="routing.route_chosen", object_id=question_id)
    assert route_event.details["reason"] == answer.route["reason"] and route_event.details["tier"] == "offline"
    egress_event = AuditEvent.objects.get(action="governance.egress_decided", object_id=question_id)
    assert egress_event.details["manifest_sha256"] == answer_manifest_sha256(answer.manifest)
    assert egress_event.details["policy_version"] == answer.manifest.get("policy_version")
    assert sum(egress_event.details["parts_by_decision"].values()) == len(answer.manifest["parts"])
    assert not AuditEvent.objects.filter(action="routing.budget_downgraded").exists()


def test_a_budget_refusal_is_stored_shown_and_audited(
    sam: Any, conversation: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from portal.routing.services import BudgetExceeded

    def refuse(**kwargs: Any) -> Any:
        raise BudgetExceeded("Your monthly budget is used up; it resets on the 1st.")

    monkeypatch.setattr(pipeline, "route", refuse)
    answer = stored_answer(run_answer(user=sam, conversation=conversation, question="Compare our two plans"))

    assert answer.status == MessageStatus.ERROR
    assert answer.error == "Your monthly budget is used up; it resets on the 1st."
    event = AuditEvent.objects.get(action="routing.budget_refused")
    assert event.outcome == "denied" and event.object_id == str(answer.reply_to_id)


# ---- a profile marked sensitive
def test_a_sensitive_profile_sends_abstractions_instead_of_placeholders(
    sam: Any, conversation: Any, fake_model: Any, fake_provider: Any
):
    from governance import known_entities
    from tests.customers.factories import CustomerFactory

    CustomerFactory.create(name="Amara Okafor", tier="key", emails=["amara@okafor.example"])
    known_entities.invalidate()  # the factory writes past the customer services, which would say so
    conversation.profile.sensitive = True
    conversation.profile.save(update_fields=["sensitive"])
    fake_provider.answer_with("Noted.")

    answer = stored_answer(
        run_answer(
            user=sam, conversation=conversation, question="Amara Okafor (amara@okafor.example) asks about refunds."
        )
    )

    assert answer.status == MessageStatus.COMPLETE
    sent = fake_provider.requests[-1].text
    assert "Amara" not in sent and "okafor.example" not in sent and "<PERSON_" not in sent
    assert "<a key-account customer> (<an e-mail address>) asks about refunds." in sent
    assert answer.manifest["sensitive"] is True
    assert answer.manifest["abstracted"] == {"EMAIL": 1, "PERSON": 1} and answer.manifest["pseudonymized"] == {}
    decided = AuditEvent.objects.get(action="governance.egress_decided", object_id=str(answer.reply_to_id))
    assert decided.details["sensitive"] is True
