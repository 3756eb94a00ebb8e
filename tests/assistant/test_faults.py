"""Provider faults end to end through the ask view, with the fake provider over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from portal.assistant.models import MessageStatus
from tests.assistant.test_streaming import ask_url, post_streaming
from tests.fakes.provider import DEFAULT_REPLY
from tests.routing.factories import CatalogModelFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_models(settings: Any, fake_model: Any, fake_provider: Any) -> tuple[Any, Any]:
    """Primary (standard tier) and fallback (premium tier), both on the fake provider; no retries, no offline."""
    settings.ROUTING_NUM_RETRIES = 0
    settings.ROUTING_OFFLINE_FALLBACK = False
    fake_model.timeout_seconds = 1.0
    fake_model.save()
    fallback = CatalogModelFactory.create(display_name="Fake fallback", api_base=fake_provider.url, tier="premium")
    return fake_model, fallback


def streamed_text(timed: list[tuple[float, dict[str, Any]]]) -> str:
    text = ""
    for _, event in timed:
        if event["event"] == "delta":
            text = "" if event.get("reset") else text + event["text"]
    return text


@pytest.mark.parametrize("fault", ["429", "500", "slow", "malformed", "disconnect"])
def test_on_a_fault_the_user_gets_the_fallback_models_answer(
    fault: str, sam: Any, conversation: Any, two_models: tuple[Any, Any], fake_provider: Any
):
    primary, fallback = two_models
    fake_provider.state.slow_seconds = 2.0
    fake_provider.script(fault)

    response, timed = post_streaming(sam, ask_url(conversation), {"question": "When are refunds paid?"})

    assert response.status_code == 200 and timed[-1][1]["event"] == "done"
    question, answer = conversation.messages.order_by("pk")
    assert question.content == "When are refunds paid?"
    assert answer.status == MessageStatus.COMPLETE, answer.error
    assert answer.content == DEFAULT_REPLY and streamed_text(timed) == DEFAULT_REPLY
    assert answer.usage["model_key"] == fallback.key
    outcomes = [attempt["outcome"] for attempt in answer.usage["attempts"]]
    assert outcomes == ["error", "success"]
    assert AuditEvent.objects.filter(action="routing.model_called").count() == 2
    assert AuditEvent.objects.filter(action="assistant.answer_stored", object_id=str(answer.pk)).exists()


def test_when_every_model_fails_the_question_stays_with_a_clear_error_and_the_page_works(
    sam: Any, client: Any, conversation: Any, two_models: tuple[Any, Any], fake_provider: Any
):
    fake_provider.script("500", "429")

    response, timed = post_streaming(sam, ask_url(conversation), {"question": "When are refunds paid?"})

    assert response.status_code == 200 and timed[-1][1]["event"] == "done"
    question, answer = conversation.messages.order_by("pk")
    assert question.content == "When are refunds paid?"
    assert answer.status == MessageStatus.ERROR and "Your question is saved" in answer.error
    assert "chat-error" in timed[-1][1]["html"]
    assert AuditEvent.objects.filter(action="routing.model_called").count() == 2
    assert AuditEvent.objects.get(action="assistant.answer_stored").outcome == "error"
    client.force_login(sam)
    page = client.get(reverse("assistant:conversation", kwargs={"conversation_id": conversation.pk}))
    assert page.status_code == 200 and "Your question is saved" in page.content.decode()


def test_the_offline_model_answers_when_every_cloud_model_fails(
    settings: Any, sam: Any, conversation: Any, two_models: tuple[Any, Any], fake_provider: Any
):
    settings.ROUTING_OFFLINE_FALLBACK = True
    fake_provider.script("500", "500")

    post_streaming(sam, ask_url(conversation), {"question": "When are refunds paid?"})

    answer = conversation.messages.get(role="assistant")
    assert answer.status == MessageStatus.COMPLETE and answer.usage["provider"] == "offline"
    assert "14 days" in answer.content
