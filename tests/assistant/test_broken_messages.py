"""No stored message can take a conversation down: every attempt outcome renders, a failing message is
contained, and every conversation can be renamed or deleted from the list (issue: a blocked question used to
make its conversation and /assistant/ answer 500 for good)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from portal.assistant import presentation
from portal.assistant.forms import ERROR_EMPTY_TITLE
from portal.assistant.models import Conversation, MessageRole, MessageStatus
from tests.assistant.factories import ConversationFactory, MessageFactory
from tests.assistant.test_streaming import ask_url, post_streaming

pytestmark = pytest.mark.django_db

ATTEMPT_SHAPES = {
    "skipped by the gate": {"model_key": "model:4", "outcome": "skipped", "error": "not cleared by the gate"},
    "skipped, disabled": {"model_key": "model:5", "model": "", "outcome": "skipped",
                          "error": "disabled in the catalog"},
    "cooling down": {"model_key": "model:6", "model": "Fast model", "outcome": "skipped", "error": "cooling down"},
    "failed": {"model_key": "model:7", "model": "Big model", "outcome": "error", "error": "timed out",
               "error_class": "Timeout", "tokens_in": 0, "tokens_out": 0, "cost": "0", "usage_id": 9},
    "succeeded": {"model_key": "offline", "model": "Offline extractive model (built in)", "outcome": "success",
                  "error": ""},
    "older row, model only": {"model": "Legacy model", "outcome": "success"},
    "empty": {},
    "not a dict": "model:1 failed",
}  # fmt: skip


def _signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("shape", ATTEMPT_SHAPES)
def test_every_attempt_outcome_renders_in_the_answer_details(sam: Any, conversation: Any, shape: str):
    question = MessageFactory.create(conversation=conversation)
    MessageFactory.create(
        conversation=conversation, role=MessageRole.ASSISTANT, reply_to=question, content="An answer.",
        usage={"model_key": "offline", "outcome": "success", "attempts": [ATTEMPT_SHAPES[shape]]},
    )  # fmt: skip

    response = _signed_in(sam).get(reverse("assistant:conversation", kwargs={"conversation_id": conversation.pk}))

    assert response.status_code == 200
    attempts = response.content.decode().split('<ol class="attempts">')[1].split("</ol>")[0]
    attempt = ATTEMPT_SHAPES[shape]
    if isinstance(attempt, dict) and attempt.get("error"):
        assert attempt["error"] in attempts
    if isinstance(attempt, dict) and (attempt.get("model") or attempt.get("model_key")):
        assert (attempt.get("model") or attempt["model_key"]) in attempts


def test_a_blocked_question_with_a_cloud_model_leaves_every_page_usable(
    sam: Any, conversation: Any, fake_model: Any, fake_provider: Any
):
    question = "My IBAN is GB82WEST12345698765432, when are refunds paid?"
    response, timed = post_streaming(sam, ask_url(conversation), {"question": question})

    assert response.status_code == 200 and timed[-1][1]["event"] == "done"
    assert fake_provider.requests == []  # the cloud model was never asked
    answer = conversation.messages.get(role=MessageRole.ASSISTANT)
    skipped = answer.usage["attempts"][0]
    assert skipped["model"] == "Fake primary" and skipped["outcome"] == "skipped"
    client = _signed_in(sam)
    page = client.get(reverse("assistant:conversation", kwargs={"conversation_id": conversation.pk}))
    assert page.status_code == 200
    assert "Fake primary skipped: not cleared by the gate" in page.content.decode()
    assert client.get(reverse("assistant:chat"), follow=True).status_code == 200


def test_a_message_that_cannot_be_rendered_is_replaced_by_a_notice(
    sam: Any, conversation: Any, monkeypatch: pytest.MonkeyPatch
):
    fine = MessageFactory.create(conversation=conversation, content="A question that renders.")
    broken = MessageFactory.create(conversation=conversation, content="A question whose template fails.")
    original = presentation.render_message_template

    def failing_for_one(context: dict[str, Any]) -> str:
        if context["message"].pk == broken.pk:
            raise ValueError("a row this version cannot show")
        return original(context)

    monkeypatch.setattr(presentation, "render_message_template", failing_for_one)
    response = _signed_in(sam).get(reverse("assistant:conversation", kwargs={"conversation_id": conversation.pk}))

    page = response.content.decode()
    assert response.status_code == 200
    assert "A question that renders." in page and f'id="message-{fine.pk}"' in page
    assert presentation.NOTICE_UNRENDERABLE in page and f'id="message-{broken.pk}"' in page
    assert "A question whose template fails." not in page


def test_every_conversation_in_the_list_can_be_renamed_or_deleted(sam: Any, profile: Any):
    conversations = [ConversationFactory.create(owner=sam, profile=profile, title=f"Topic {n}") for n in range(3)]
    client = _signed_in(sam)

    page = client.get(reverse("assistant:conversation", kwargs={"conversation_id": conversations[0].pk}))
    html = page.content.decode()
    for conversation in conversations:
        assert reverse("assistant:conversation_rename", kwargs={"conversation_id": conversation.pk}) in html
        assert reverse("assistant:conversation_delete", kwargs={"conversation_id": conversation.pk}) in html

    # deleting one that is not the open one works from the list
    client.post(reverse("assistant:conversation_delete", kwargs={"conversation_id": conversations[2].pk}))
    assert not Conversation.objects.filter(pk=conversations[2].pk).exists()
    assert Conversation.objects.filter(owner=sam).count() == 2


def test_renaming_with_htmx_updates_the_sidebar_and_an_empty_title_is_refused_in_place(sam: Any, conversation: Any):
    client = _signed_in(sam)
    url = reverse("assistant:conversation_rename", kwargs={"conversation_id": conversation.pk})

    response = client.post(url, {"title": "Refund questions"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200
    assert f'id="conversation-link-{conversation.pk}"' in html and 'hx-swap-oob="true"' in html
    assert "Refund questions" in html

    refused = client.post(url, {"title": "   "}, headers={"HX-Request": "true"})
    assert refused.status_code == 400 and ERROR_EMPTY_TITLE in refused.content.decode()
    conversation.refresh_from_db()
    assert conversation.title == "Refund questions"


def test_a_cut_stream_keeps_its_partial_text_marked_as_an_error_without_remember_this(sam: Any, conversation: Any):
    first = MessageFactory.create(conversation=conversation)
    complete = MessageFactory.create(
        conversation=conversation, role=MessageRole.ASSISTANT, reply_to=first, content="Holidays need two weeks."
    )
    second = MessageFactory.create(conversation=conversation)
    MessageFactory.create(
        conversation=conversation, role=MessageRole.ASSISTANT, reply_to=second, status=MessageStatus.ERROR,
        content="Refunds are paid within", error="The model's answer stream ended before it finished.",
    )  # fmt: skip

    page = _signed_in(sam).get(reverse("assistant:conversation", kwargs={"conversation_id": conversation.pk}))

    html = page.content.decode()
    assert "Refunds are paid within" in html and "ended before it finished" in html
    # only the complete answer offers "Remember this"
    assert html.count("Remember this") == 1
    assert reverse("memory:remember", kwargs={"message_id": complete.pk}) in html


@pytest.mark.parametrize("which", ["unknown", "another conversation's", "already answered"])
def test_a_streamed_confirm_of_a_question_that_is_not_waiting_is_a_404_before_any_stream(
    sam: Any, conversation: Any, profile: Any, which: str
):
    from tests.assistant.test_streaming import STREAM

    other = ConversationFactory.create(owner=sam, profile=profile)
    question_id = {
        "unknown": 987654,
        "another conversation's": MessageFactory.create(
            conversation=other, status=MessageStatus.AWAITING_CONFIRMATION
        ).pk,
        "already answered": MessageFactory.create(conversation=conversation, status=MessageStatus.COMPLETE).pk,
    }[which]
    url = reverse("assistant:confirm", kwargs={"conversation_id": conversation.pk, "question_id": question_id})

    response, timed = post_streaming(sam, url, {})

    assert response.status_code == 404 and not response.streaming and timed == []
    assert response["Content-Type"] != STREAM
    assert not conversation.messages.filter(role=MessageRole.ASSISTANT).exists()
