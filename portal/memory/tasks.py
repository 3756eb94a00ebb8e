from __future__ import annotations

from celery import shared_task


@shared_task(name="memory.learn_from_conversation", autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=3)
def memory_learn_from_conversation_task(conversation_id: int) -> list[int]:
    """Propose memories from one conversation (idempotent; see learning.memory_learn_from_conversation)."""
    from portal.memory.learning import memory_learn_from_conversation

    return list(memory_learn_from_conversation(conversation_id=conversation_id).proposed_ids)


@shared_task(name="memory.learn_from_idle_conversations")
def memory_learn_from_idle_conversations_task() -> list[int]:
    """Periodic (Celery beat): queue learning for conversations that have gone quiet since their last answer."""
    from portal.memory.learning import conversations_due_for_learning

    due = conversations_due_for_learning()
    for conversation_id in due:
        memory_learn_from_conversation_task.delay(conversation_id)
    return due
