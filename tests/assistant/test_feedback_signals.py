"""The questions whose answers were marked helpful or remembered, with what the answers cited, and the sources
opened from an answer, are the retrieval ranker's real signals (portal.assistant.selectors.ranker_signals,
registered with knowledge.ranking)."""

from __future__ import annotations

import pytest

from knowledge import ranking
from knowledge.models import Chunk
from portal.assistant.models import CitationOpen, Message, MessageRole, MessageStatus
from portal.assistant.selectors import ranker_signals
from portal.memory.models import MemoryItem, Source
from tests.accounts.factories import UserFactory
from tests.assistant.factories import ConversationFactory, MessageFactory, knowledge_base_with

pytestmark = pytest.mark.django_db


def test_helpful_answers_give_their_question_and_the_cited_chunks_of_the_base() -> None:
    base = knowledge_base_with(name="Signals", passages=[("Leave", "Sixteen weeks.", None), ("Pay", "Monthly.", 2)])
    other = knowledge_base_with(name="Elsewhere", passages=[("Other", "Not here.", None)])
    leave, pay = Chunk.objects.filter(knowledge_base=base).order_by("document__title").values_list("pk", flat=True)
    outside = Chunk.objects.get(knowledge_base=other).pk
    conversation = ConversationFactory.create(owner=UserFactory.create(roles=["Staff"]))

    def answer(question: str, feedback: int | None, citations: list[dict[str, object]], **extra: object) -> None:
        asked = MessageFactory.create(conversation=conversation, content=question)
        MessageFactory.create(
            conversation=conversation,
            role=MessageRole.ASSISTANT,
            reply_to=asked,
            content="An answer.",
            feedback=feedback,
            citations=citations,
            **extra,
        )

    answer("how long is parental leave", 1, [{"chunk_id": leave, "cited": True}, {"chunk_id": pay, "cited": False}])
    answer("when are we paid", -1, [{"chunk_id": pay, "cited": True}])  # not helpful
    answer("what about pay day", None, [{"chunk_id": pay, "cited": True}])  # no feedback
    answer("somewhere else", 1, [{"chunk_id": outside, "cited": True}])  # another base's passage
    answer("cut short", 1, [{"chunk_id": pay, "cited": True}], status=MessageStatus.STOPPED)
    # "remember this" on an unrated answer counts like a helpful rating; a memory learned by the worker
    # (no author) does not, nor does remembering an answer rated not helpful
    remembered = MessageFactory.create(conversation=conversation, content="which day is pay day")
    kept = MessageFactory.create(
        conversation=conversation, role=MessageRole.ASSISTANT, reply_to=remembered, content="The 25th.",
        citations=[{"chunk_id": pay, "cited": True}],
    )  # fmt: skip
    learned = MessageFactory.create(
        conversation=conversation, role=MessageRole.ASSISTANT, reply_to=remembered, content="Monthly.",
        citations=[{"chunk_id": leave, "cited": True}],
    )  # fmt: skip
    owner = conversation.owner
    assert owner is not None
    for message, author in ((kept, owner), (learned, None)):
        MemoryItem.objects.create(
            text="Pay day is the 25th.", source=Source.CONVERSATION, source_message_id=message.pk, author=author
        )
    unhelpful = Message.objects.get(content="An answer.", feedback=-1)
    MemoryItem.objects.create(
        text="Paid monthly.", source=Source.CONVERSATION, source_message_id=unhelpful.pk, author=owner
    )

    # a source opened from an unrated answer counts (the opened chunk only); from a not-helpful one it does not
    unrated = Message.objects.get(reply_to__content="what about pay day")
    for message in (unrated, unhelpful):
        CitationOpen.objects.create(message=message, number=1, chunk_id=pay, user=owner)

    assert ranker_signals(base.pk) == [
        ranking.LabelledQuestion("which day is pay day", frozenset({pay})),
        ranking.LabelledQuestion("what about pay day", frozenset({pay})),
        ranking.LabelledQuestion("how long is parental leave", frozenset({leave})),
    ]
    assert ranker_signals(other.pk) == [ranking.LabelledQuestion("somewhere else", frozenset({outside}))]
    # registered when the app is ready: the ranker's trainer finds them through knowledge.ranking
    assert ranking.signals_for(base.pk) == ranker_signals(base.pk)
