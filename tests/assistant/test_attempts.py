"""Regenerate (a new attempt kept beside the old), edit and resend, and a stopped answer."""

from __future__ import annotations

from typing import Any

import pytest
from django.http import Http404
from django.urls import reverse

from audit.models import AuditEvent
from portal.assistant import pipeline, selectors
from portal.assistant.models import Message, MessageStatus
from portal.assistant.presentation import message_html
from tests.assistant.factories import ConversationFactory
from tests.assistant.helpers import run_answer, stored_answer
from tests.assistant.test_streaming import ask_url, post_streaming

pytestmark = pytest.mark.django_db

QUESTION = "When are refunds paid?"


def regenerate_url(conversation: Any, question: Any) -> str:
    return reverse("assistant:regenerate", kwargs={"conversation_id": conversation.pk, "question_id": question.pk})


def test_regenerate_adds_a_new_attempt_and_keeps_the_first(
    sam: Any, conversation: Any, fake_model: Any, fake_provider: Any
):
    fake_provider.answer_with("The first attempt.")
    first = stored_answer(run_answer(user=sam, conversation=conversation, question=QUESTION))
    question = first.reply_to
    fake_provider.answer_with("The second attempt.")

    response, timed = post_streaming(sam, regenerate_url(conversation, question), {})

    assert response.status_code == 200
    kinds = [event["event"] for _, event in timed]
    assert kinds[0] == "question" and timed[0][1]["id"] == question.pk and kinds[-1] == "done"
    assert conversation.messages.filter(role="user").count() == 1  # no second copy of the question
    answers = list(question.answers.order_by("pk"))
    assert [answer.content for answer in answers] == ["The first attempt.", "The second attempt."]
    assert all(answer.status == MessageStatus.COMPLETE for answer in answers)
    assert "attempt 2 of 2" in timed[-1][1]["html"]
    event = AuditEvent.objects.get(action="assistant.answer_regenerated")
    assert event.details == {"conversation_id": conversation.pk, "earlier_attempts": 1}
    assert len(fake_provider.requests) == 2  # the new attempt really asked the model again

    rows = {message.pk: message for message in selectors.conversation_messages(conversation=conversation)}
    places = [selectors.answer_place(message=rows[answer.pk]) for answer in answers]
    assert [(place.attempt, place.attempts, place.regenerable) for place in places] == [(1, 2, True), (2, 2, True)]


def test_the_next_question_sees_only_the_latest_attempt_in_its_history(
    sam: Any, conversation: Any, fake_model: Any, fake_provider: Any
):
    fake_provider.answer_with("Old attempt.")
    question = stored_answer(run_answer(user=sam, conversation=conversation, question=QUESTION)).reply_to
    fake_provider.answer_with("New attempt.")
    run_answer(user=sam, conversation=conversation, regenerate_question_id=question.pk)

    history = selectors.history_for(conversation=conversation, limit=pipeline.HISTORY_MESSAGES)

    assert [message.content for message in history] == [QUESTION, "New attempt."]


def test_only_the_latest_question_can_be_regenerated(sam: Any, conversation: Any, fake_model: Any):
    earlier = stored_answer(run_answer(user=sam, conversation=conversation, question=QUESTION))
    latest = stored_answer(run_answer(user=sam, conversation=conversation, question="And for damaged items?"))

    response, timed = post_streaming(sam, regenerate_url(conversation, earlier.reply_to), {})

    assert response.status_code == 404 and timed == []
    assert earlier.reply_to.answers.count() == 1
    earlier_place = selectors.answer_place(message=Message.objects.get(pk=earlier.pk))
    latest_place = selectors.answer_place(message=Message.objects.get(pk=latest.pk))
    assert (earlier_place.regenerable, latest_place.regenerable) == (False, True)
    with pytest.raises(Http404):
        selectors.regenerable_question_get(conversation=conversation, question_id=earlier.pk)  # an answer


def test_someone_else_cannot_regenerate_an_answer(sam: Any, alice: Any, conversation: Any, fake_model: Any):
    answer = stored_answer(run_answer(user=sam, conversation=conversation, question=QUESTION))

    response, timed = post_streaming(alice, regenerate_url(conversation, answer.reply_to), {})

    assert response.status_code == 404 and timed == [] and answer.reply_to.answers.count() == 1


def test_edit_and_resend_sends_a_new_question_that_names_the_one_it_edits(
    sam: Any, conversation: Any, fake_model: Any, fake_provider: Any
):
    original = stored_answer(run_answer(user=sam, conversation=conversation, question=QUESTION)).reply_to

    response, timed = post_streaming(
        sam, ask_url(conversation), {"question": "When are refunds for damaged items paid?", "edited_from": original.pk}
    )

    assert response.status_code == 200 and timed[-1][1]["event"] == "done"
    edited = conversation.messages.filter(role="user").latest("pk")
    assert edited.edited_from == original and edited.content == "When are refunds for damaged items paid?"
    assert Message.objects.filter(pk=original.pk, content=QUESTION).exists()  # the original stays as it was
    assert edited.answers.get().status == MessageStatus.COMPLETE
    assert "When are refunds for damaged items paid?" in fake_provider.requests[-1].text
    asked = AuditEvent.objects.filter(action="assistant.question_asked", object_id=str(edited.pk)).get()
    assert asked.details["edited_from_id"] == original.pk
    assert "edited" in message_html(None, edited) and f"#message-{original.pk}" in message_html(None, edited)


def test_an_edit_of_a_question_from_another_conversation_is_refused(sam: Any, conversation: Any, fake_model: Any):
    other = ConversationFactory.create(owner=sam, profile=conversation.profile)
    foreign = stored_answer(run_answer(user=sam, conversation=other, question=QUESTION)).reply_to

    response, timed = post_streaming(sam, ask_url(conversation), {"question": "Edited", "edited_from": foreign.pk})

    assert response.status_code == 404 and timed == []
    assert not conversation.messages.exists()


def test_a_stopped_answer_shows_what_came_marked_stopped_and_can_be_regenerated(
    sam: Any, conversation: Any, fake_model: Any
):
    question = Message.objects.create(conversation=conversation, role="user", content=QUESTION)
    stopped = Message.objects.create(
        conversation=conversation, role="assistant", reply_to=question, content="Refunds are",
        status=MessageStatus.STOPPED, error=pipeline.ERROR_STOPPED,
    )  # fmt: skip

    html = message_html(None, selectors.conversation_messages(conversation=conversation).get(pk=stopped.pk))

    assert "Refunds are" in html and 'class="tag stopped"' in html and pipeline.ERROR_STOPPED in html
    assert 'role="alert"' not in html  # a stop is the user's choice, not an error
    assert regenerate_url(conversation, question) in html
