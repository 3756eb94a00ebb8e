"""Retention policies, the retention run and legal holds."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import ForeignObjectRel
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from audit.privacy import text_hmac
from governance.models import ConversationVault
from portal.assistant.models import Conversation, Message
from portal.customers.models import Interaction
from portal.memory.models import MemoryItem
from portal.retention.models import LegalHold, RetentionPolicyVersion
from portal.retention.services import (
    legal_hold_lift,
    legal_hold_place,
    retention_policy_publish,
    retention_run,
)
from portal.routing.models import Usage
from tests.assistant.factories import ConversationFactory, MessageFactory
from tests.customers.factories import CustomerFactory, InteractionFactory

pytestmark = pytest.mark.django_db
OLD = timezone.now() - dt.timedelta(days=400)


def aged(model: Any, pk: int, field: str = "updated_at", when: dt.datetime = OLD) -> None:
    model.objects.filter(pk=pk).update(**{field: when})


def old_conversation(owner: Any, messages: int = 2, customer: Any = None) -> Conversation:
    conversation = ConversationFactory.create(owner=owner, customer=customer)
    for _ in range(messages):
        MessageFactory.create(conversation=conversation, manifest={"egress": {"values": ["secret"]}})
    for prefix in ("assistant-conversation-", "memory-learning-"):
        vault = ConversationVault.objects.create(conversation_key=f"{prefix}{conversation.pk}", ciphertext="x")
        aged(ConversationVault, vault.pk)
    aged(Conversation, conversation.pk)
    return conversation


def publish(officer: Any, **periods: Any) -> RetentionPolicyVersion:
    return retention_policy_publish(actor=officer, periods=periods, reason="records schedule 2026")


def test_a_period_under_the_legal_minimum_is_refused_with_the_reason(olivia: Any) -> None:
    with pytest.raises(ValidationError) as refused:
        publish(olivia, conversations=10, usage=30)
    text = " ".join(refused.value.messages)
    assert "Conversations and their messages: 10 days is shorter than the legal minimum of 30 days" in text
    assert "investigations need at least a month" in text
    assert "AI usage rows (costs, tokens): 30 days is shorter than the legal minimum of 400 days" in text
    assert not RetentionPolicyVersion.objects.exists()


def test_policies_are_versioned_and_audited_and_only_officers_publish(olivia: Any, sam: Any) -> None:
    first = publish(olivia, conversations=90)
    second = publish(olivia, conversations=60, interactions=730)
    assert (first.number, second.number) == (1, 2)
    assert second.diff == [
        {"kind": "conversations", "before": 90, "after": 60},
        {"kind": "interactions", "before": None, "after": 730},
    ]
    event = AuditEvent.objects.filter(action="retention.policy_published").latest("seq")
    assert event.details["version"] == 2 and event.details["reason_hmac"] == text_hmac("records schedule 2026")
    assert "records schedule 2026" not in str(event.details)  # the typed reason stays on the version row
    with pytest.raises(ValidationError, match="nothing to publish"):
        publish(olivia, conversations=60, interactions=730)
    with pytest.raises(PermissionDenied):
        publish(sam, conversations=60)
    with pytest.raises(ValueError):
        first.save()


def test_the_run_deletes_old_conversations_with_their_messages_and_vaults_in_audited_batches(
    olivia: Any, sam: Any
) -> None:
    old = [old_conversation(sam) for _ in range(5)]
    recent = ConversationFactory.create(owner=sam)
    MessageFactory.create(conversation=recent)
    # a source opened from an old answer (a ranker signal) goes with it; one of the recent answer stays
    from portal.assistant.models import CitationOpen

    kept_answer = MessageFactory.create(conversation=recent, role="assistant")
    CitationOpen.objects.create(message=old[0].messages.earliest("pk"), number=1, chunk_id=1, user=sam)
    kept = CitationOpen.objects.create(message=kept_answer, number=1, chunk_id=2, user=sam)
    publish(olivia, conversations=30)
    run = retention_run(batch_size=2)
    assert run is not None and run.status == "done"
    assert run.deleted == {"conversations": 5} and run.batches == 3
    assert list(Conversation.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not Message.objects.filter(conversation_id__in=[c.pk for c in old]).exists()
    assert not ConversationVault.objects.exists()
    assert list(CitationOpen.objects.all()) == [kept]
    batches = list(AuditEvent.objects.filter(action="retention.deleted").order_by("seq"))
    assert [event.details["count"] for event in batches] == [2, 2, 1]
    assert batches[0].details["first_id"] == old[0].pk and batches[-1].details["last_id"] == old[-1].pk
    assert sum(event.details["messages"] for event in batches) == 10
    assert sum(event.details["source_opens"] for event in batches) == 1
    assert sum(event.details["vaults"] for event in batches) == 10
    assert "secret" not in str([event.details for event in batches])  # counts and ids, never content
    finished = AuditEvent.objects.get(action="retention.run_finished")
    assert finished.details["deleted"] == {"conversations": 5}


def test_nothing_is_deleted_without_a_policy_or_for_a_kind_without_a_period(olivia: Any, sam: Any) -> None:
    conversation = old_conversation(sam)
    assert retention_run() is not None
    publish(olivia, interactions=365)
    retention_run()
    assert Conversation.objects.filter(pk=conversation.pk).exists()


def test_a_legal_hold_keeps_what_it_covers_until_it_is_lifted(olivia: Any, sam: Any, alice: Any) -> None:
    customer = CustomerFactory.create()
    held_directly = old_conversation(alice)
    held_by_owner = old_conversation(sam)
    held_by_customer = old_conversation(alice, customer=customer)
    free = old_conversation(alice)
    interaction = InteractionFactory.create(customer=customer, occurred_at=OLD)
    holds = [
        legal_hold_place(actor=olivia, subject="conversation", subject_id=held_directly.pk, reason="case 12"),
        legal_hold_place(actor=olivia, subject="user", subject_id=sam.pk, reason="tribunal claim"),
        legal_hold_place(actor=olivia, subject="customer", subject_id=customer.pk, reason="dispute 7"),
    ]
    publish(olivia, conversations=30, vaults=30, interactions=365)
    run = retention_run()
    assert run is not None
    kept = {held_directly.pk, held_by_owner.pk, held_by_customer.pk}
    assert set(Conversation.objects.values_list("pk", flat=True)) == kept
    assert ConversationVault.objects.count() == 6  # the held conversations' vaults too
    assert Interaction.objects.filter(pk=interaction.pk).exists()
    assert run.held_back == {"conversations": 3, "vaults": 6, "interactions": 1}
    assert not Conversation.objects.filter(pk=free.pk).exists()
    placed = AuditEvent.objects.filter(action="retention.hold_placed").order_by("seq")
    assert [event.details["reason_hmac"] for event in placed] == [
        text_hmac(reason) for reason in ("case 12", "tribunal claim", "dispute 7")
    ]
    assert not any("tribunal" in str(event.details) for event in placed)
    for hold in holds:
        legal_hold_lift(actor=olivia, hold=hold, reason="case closed")
    lifted = AuditEvent.objects.filter(action="retention.hold_lifted", details__reason_hmac=text_hmac("case closed"))
    assert lifted.count() == 3
    retention_run()
    assert not Conversation.objects.exists() and not Interaction.objects.exists()


def test_a_hold_suspends_deletion_by_hand_and_says_which_hold(olivia: Any, alice: Any, sam: Any) -> None:
    from portal.assistant.services import conversation_delete
    from portal.customers.services import customer_delete

    customer = CustomerFactory.create()
    hold = legal_hold_place(actor=olivia, subject="customer", subject_id=customer.pk, reason="dispute 7")
    with pytest.raises(ValidationError) as refused:
        customer_delete(actor=alice, customer=customer)
    assert f"legal hold #{hold.pk} on customer #{customer.pk} (dispute 7)" in refused.value.messages[0]
    conversation = ConversationFactory.create(owner=sam, customer=customer)
    with pytest.raises(ValidationError, match="legal hold"):
        conversation_delete(actor=sam, conversation=conversation)
    legal_hold_lift(actor=olivia, hold=hold, reason="settled")
    conversation_delete(actor=sam, conversation=conversation)
    customer_delete(actor=alice, customer=customer)


def test_deleting_a_conversation_by_hand_deletes_its_vaults(sam: Any) -> None:
    from portal.assistant.services import conversation_delete

    conversation = old_conversation(sam)
    other = old_conversation(sam)
    conversation_delete(actor=sam, conversation=conversation)
    assert set(ConversationVault.objects.values_list("conversation_key", flat=True)) == {
        f"assistant-conversation-{other.pk}",
        f"memory-learning-{other.pk}",
    }


def test_holds_need_a_reason_an_existing_subject_and_an_officer(olivia: Any, sam: Any) -> None:
    with pytest.raises(ValidationError, match="reason"):
        legal_hold_place(actor=olivia, subject="user", subject_id=sam.pk, reason=" ")
    with pytest.raises(ValidationError, match="no customer #999999"):
        legal_hold_place(actor=olivia, subject="customer", subject_id=999999, reason="x")
    with pytest.raises(PermissionDenied):
        legal_hold_place(actor=sam, subject="user", subject_id=sam.pk, reason="x")
    hold = legal_hold_place(actor=olivia, subject="user", subject_id=sam.pk, reason="x")
    legal_hold_lift(actor=olivia, hold=hold, reason="done")
    with pytest.raises(ValidationError, match="lifted already"):
        legal_hold_lift(actor=olivia, hold=LegalHold.objects.get(pk=hold.pk), reason="again")


def test_other_kinds_usage_memories_by_scope_interactions_vaults(olivia: Any, sam: Any) -> None:
    old_usage = Usage.objects.create(created_at=OLD, model_key="m", model_name="m", provider="p", outcome="success")
    new_usage = Usage.objects.create(created_at=timezone.now(), model_key="m", model_name="m", provider="p",
                                     outcome="success")  # fmt: skip
    organisation = MemoryItem.objects.create(text="The office opens at nine.", scope="organisation")
    personal = MemoryItem.objects.create(text="Sam prefers e-mail.", scope="user", scope_user=sam)
    aged(MemoryItem, organisation.pk)
    aged(MemoryItem, personal.pk)
    lone_vault = ConversationVault.objects.create(conversation_key="simulator-abc", ciphertext="x")
    aged(ConversationVault, lone_vault.pk)
    publish(olivia, usage=400, memories_user=30, vaults=30)
    run = retention_run()
    assert run is not None
    assert run.deleted == {"vaults": 1, "usage": 1, "memories_user": 1}
    assert list(Usage.objects.values_list("pk", flat=True)) == [new_usage.pk]
    assert not Usage.objects.filter(pk=old_usage.pk).exists()
    assert list(MemoryItem.objects.values_list("pk", flat=True)) == [organisation.pk]  # its scope has no period


def test_uploaded_originals_are_removed_and_the_document_stays(olivia: Any, alice: Any) -> None:
    from django.core.files.base import ContentFile

    from knowledge.models import Document
    from knowledge.services import knowledge_base_create

    base = knowledge_base_create(actor=None, name="Handbook")
    document = Document.objects.create(knowledge_base=base, title="Old", original_filename="old.txt", sha256="0" * 64,
                                       uploaded_by=alice)  # fmt: skip
    document.file.save("old.txt", ContentFile(b"old original"), save=True)
    storage, name = document.file.storage, document.file.name
    assert name is not None
    assert storage.exists(name)
    aged(Document, document.pk, "created_at")
    publish(olivia, uploads=90)
    retention_run()
    document.refresh_from_db()
    assert not document.file and not storage.exists(name)
    assert AuditEvent.objects.get(action="retention.deleted").details["originals"] == 1


def test_the_purge_knows_every_relation_to_conversations_and_messages() -> None:
    """conversations_purge deletes with plain SQL: a new model pointing at them must be added there."""
    relations = {
        (field.related_model._meta.label, field.field.name)
        for model in (Conversation, Message)
        for field in model._meta.get_fields(include_hidden=True)
        if isinstance(field, ForeignObjectRel) and field.is_relation and field.auto_created and not field.concrete
    }
    assert relations == {("assistant.Message", "conversation"), ("assistant.Message", "reply_to"),
                         ("assistant.Message", "edited_from"), ("ml.TaskLabel", "message"),
                         ("assistant.CitationOpen", "message")}  # fmt: skip


def test_the_retention_page_for_officers(client: Client, olivia: Any, sam: Any) -> None:
    client.force_login(sam)
    assert client.get("/retention/").status_code == 403
    client.force_login(olivia)
    page = client.get("/retention/")
    assert page.status_code == 200 and "No retention run yet" in page.content.decode()
    refused = client.post("/retention/policy/", {"conversations": "7", "reason": "shorter"})
    assert refused.status_code == 400
    assert "shorter than the legal minimum of 30 days" in refused.content.decode()
    assert client.post("/retention/policy/", {"conversations": "45", "reason": "schedule"}).status_code == 302
    old_conversation(sam)
    retention_run()
    text = client.get("/retention/").content.decode()
    assert "Last run #" in text and "45 days" in text
    assert (
        client.post("/retention/holds/", {"subject": "user", "subject_id": sam.pk, "reason": "claim"}).status_code
        == 302
    )
    hold = LegalHold.objects.get()
    assert client.post(f"/retention/holds/{hold.pk}/lift/", {"reason": "closed"}).status_code == 302
    assert LegalHold.objects.get().lifted_at is not None


def test_the_run_is_scheduled_by_celery_beat(settings: Any) -> None:
    assert settings.CELERY_BEAT_SCHEDULE["retention-run"]["task"] == "retention.run"


def test_a_hold_keeps_memories_about_its_subject_and_the_account_in_the_site_admin(
    client: Client, olivia: Any, alice: Any, sam: Any
) -> None:
    from portal.memory.services import memory_delete

    customer = CustomerFactory.create()
    memory = MemoryItem.objects.create(text="Prefers e-mail.", scope="customer", scope_customer=customer, author=alice)
    legal_hold_place(actor=olivia, subject="customer", subject_id=customer.pk, reason="dispute 7")
    legal_hold_place(actor=olivia, subject="user", subject_id=sam.pk, reason="tribunal claim")
    with pytest.raises(ValidationError, match="legal hold"):
        memory_delete(actor=alice, memory=memory)
    client.force_login(alice)
    assert client.get(f"/admin/auth/user/{sam.pk}/delete/").status_code == 403
    client.post("/admin/auth/user/", {"action": "delete_selected", "_selected_action": [sam.pk], "post": "yes"})
    assert sam.__class__.objects.filter(pk=sam.pk).exists()


def test_the_celery_task_runs_the_job(olivia: Any, sam: Any) -> None:
    from portal.retention.tasks import retention_run_task

    old_conversation(sam)
    publish(olivia, conversations=30)
    result = retention_run_task.apply(kwargs={"trigger": "schedule"}).get()
    assert result["deleted"] == {"conversations": 1}


def test_a_purge_leaves_an_edited_copy_elsewhere_intact(sam: Any) -> None:
    from django.db import transaction

    from portal.retention.services import conversations_purge

    purged, kept = ConversationFactory.create(owner=sam), ConversationFactory.create(owner=sam)
    original = MessageFactory.create(conversation=purged, content="Original question")
    copy = MessageFactory.create(conversation=kept, content="Edited copy", edited_from=original)

    with transaction.atomic():
        conversations_purge([purged.pk])

    copy.refresh_from_db()
    assert copy.content == "Edited copy" and copy.edited_from_id is None
    assert not Message.objects.filter(pk=original.pk).exists()
