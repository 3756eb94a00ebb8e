from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection

from audit.models import AuditEvent
from portal.customers.services import customer_delete
from portal.memory.models import MemoryItem
from portal.memory.selectors import memory_retrieve
from portal.memory.services import (
    ERROR_SCOPE_ROLE,
    MemoryDraft,
    contradiction_reason,
    memory_create,
    memory_delete,
    memory_review,
)
from tests.customers.factories import CustomerFactory
from tests.memory.factories import MemoryItemFactory

pytestmark = pytest.mark.django_db

FACT = "Refunds for damaged goods are paid within 14 days."


def test_a_staff_proposal_is_used_only_after_approval(sam: Any, olivia: Any) -> None:
    memory = memory_create(actor=sam, draft=MemoryDraft(text=FACT))
    assert memory.status == "proposed" and memory.author == sam
    assert memory_retrieve(user=sam, query="How fast are refunds for damaged goods paid?") == []
    memory_review(actor=olivia, memory=memory, approve=True)
    [retrieved] = memory_retrieve(user=sam, query="How fast are refunds for damaged goods paid?")
    assert retrieved.memory_id == memory.pk and retrieved.text == FACT
    actions = list(
        AuditEvent.objects.filter(object_id=str(memory.pk), object_type="memory.memoryitem").values_list(
            "action", flat=True
        )
    )
    assert actions[:2] == ["memory.memory_proposed", "memory.memory_approved"]


def test_staff_cannot_approve_shared_memories(sam: Any) -> None:
    memory = memory_create(actor=sam, draft=MemoryDraft(text=FACT))
    with pytest.raises(PermissionDenied):
        memory_review(actor=sam, memory=memory, approve=True)


def test_a_reviewer_can_edit_while_approving_and_the_text_is_re_embedded(sam: Any, alice: Any) -> None:
    memory = memory_create(actor=sam, draft=MemoryDraft(text="refunds quick"))
    memory_review(actor=alice, memory=memory, approve=True, draft=MemoryDraft(text=FACT, kind="procedure"))
    memory.refresh_from_db()
    assert memory.text == FACT and memory.kind == "procedure" and memory.status == "approved"
    assert memory_retrieve(user=sam, query="How fast are refunds for damaged goods paid?")[0].memory_id == memory.pk


def test_a_reviewers_own_memory_is_approved_at_once_unless_flagged(alice: Any) -> None:
    first = memory_create(actor=alice, draft=MemoryDraft(text=FACT))
    assert first.status == "approved" and first.flags == []
    duplicate = memory_create(actor=alice, draft=MemoryDraft(text="Refunds for damaged goods get paid within 14 days."))
    assert duplicate.status == "proposed"
    assert duplicate.flags[0]["memory_id"] == first.pk and duplicate.flags[0]["relation"] == "duplicate"


@pytest.mark.parametrize(
    "other",
    ["Refunds for damaged goods are paid within 30 days.", "Refunds for damaged goods are not paid within 14 days."],
)
def test_contradictions_are_flagged_not_silently_added(alice: Any, other: str) -> None:
    first = memory_create(actor=alice, draft=MemoryDraft(text=FACT))
    second = memory_create(actor=alice, draft=MemoryDraft(text=other))
    assert second.status == "proposed"
    assert [(f["memory_id"], f["relation"]) for f in second.flags] == [(first.pk, "contradiction")]


def test_the_contradiction_heuristic() -> None:
    assert contradiction_reason("We open at 9.", "We open at 10.") == "the numbers differ"
    assert "negation" in contradiction_reason("We ship on Sundays.", "We don't ship on Sundays.")
    assert contradiction_reason("We ship on Sundays.", "On Sundays we ship.") == ""


def test_scopes_are_checked(sam: Any) -> None:
    from django.contrib.auth.models import Group

    with pytest.raises(ValidationError) as error:
        memory_create(
            actor=sam, draft=MemoryDraft(text=FACT, scope="role", scope_role=Group.objects.get(name="Auditor"))
        )
    assert ERROR_SCOPE_ROLE in str(error.value)
    hidden = CustomerFactory.create(restricted=True)
    with pytest.raises(ValidationError):
        memory_create(actor=sam, draft=MemoryDraft(text=FACT, scope="customer", scope_customer=hidden))


def test_a_personal_memory_is_reviewed_by_its_person_only(sam: Any, alice: Any) -> None:
    memory = memory_create(
        actor=sam, draft=MemoryDraft(text="I like short answers.", kind="preference", scope="user", scope_user=sam)
    )
    assert memory.status == "approved"  # the person is their own reviewer
    proposed = MemoryItemFactory.create(
        text="Sam works Tuesdays to Fridays.", scope="user", scope_user=sam, status="proposed"
    )
    with pytest.raises(PermissionDenied):
        memory_review(actor=alice, memory=proposed, approve=True)
    memory_review(actor=sam, memory=proposed, approve=False)
    assert MemoryItem.objects.get(pk=proposed.pk).status == "rejected"


def _row_exists(memory_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM memory_memoryitem WHERE id = %s", [memory_id])
        return bool(cursor.fetchone()[0])


def test_forgetting_removes_text_and_vector_and_leaves_a_tombstone_without_content(sam: Any, alice: Any) -> None:
    memory = memory_create(actor=alice, draft=MemoryDraft(text=FACT))
    memory_id = memory.pk
    assert memory_retrieve(user=sam, query="refunds for damaged goods")
    memory_delete(actor=alice, memory=memory)
    assert not _row_exists(memory_id)
    assert memory_retrieve(user=sam, query="refunds for damaged goods") == []
    tombstone = AuditEvent.objects.filter(action="memory.memory_forgotten").latest("seq")
    assert tombstone.object_id == str(memory_id) and tombstone.actor_id == alice.pk
    assert tombstone.details["kind"] == "fact" and tombstone.details["scope"] == "organisation"
    for event in AuditEvent.objects.filter(object_type="memory.memoryitem"):
        assert "damaged" not in str(event.details), event.action


def test_staff_may_withdraw_their_own_proposal_but_not_delete_approved_memories(sam: Any, alice: Any) -> None:
    proposal = memory_create(actor=sam, draft=MemoryDraft(text=FACT))
    approved = memory_create(actor=alice, draft=MemoryDraft(text="The office is closed on public holidays."))
    with pytest.raises(PermissionDenied):
        memory_delete(actor=sam, memory=approved)
    memory_delete(actor=sam, memory=proposal)
    assert not MemoryItem.objects.filter(pk=proposal.pk).exists()


def test_deleting_a_customer_forgets_the_memories_about_them(alice: Any) -> None:
    customer = CustomerFactory.create()
    customer_id = customer.pk
    memory = memory_create(actor=alice, draft=MemoryDraft(text="Pays late.", scope="customer", scope_customer=customer))
    customer_delete(actor=alice, customer=customer)
    assert not _row_exists(memory.pk)
    tombstone = AuditEvent.objects.filter(action="memory.memory_forgotten").latest("seq")
    assert tombstone.details["reason"] == "customer deleted" and tombstone.details["scope_target_id"] == customer_id
