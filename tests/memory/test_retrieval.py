from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from guardian.shortcuts import assign_perm

from audit.models import AuditEvent
from portal.memory.models import MemoryItem
from portal.memory.selectors import memory_retrieve
from tests.customers.factories import CustomerFactory
from tests.memory.factories import MemoryItemFactory

pytestmark = pytest.mark.django_db

QUESTION = "When do invoices have to be paid?"


def _texts(memories: list[Any]) -> set[str]:
    return {memory.text for memory in memories}


def test_a_user_gets_organisation_role_and_own_memories_only(sam: Any, alice: Any) -> None:
    MemoryItemFactory.create(text="Invoices are paid within 30 days of the invoice date.")
    MemoryItemFactory.create(
        text="Staff check that invoices are paid before a new order ships.",
        scope="role",
        scope_role=Group.objects.get(name="Staff"),
    )
    MemoryItemFactory.create(
        text="Administrators may extend invoice payment terms to 60 days.",
        scope="role",
        scope_role=Group.objects.get(name="Administrator"),
    )
    MemoryItemFactory.create(text="Sam prefers invoices to be paid by bank transfer.", scope="user", scope_user=sam)
    MemoryItemFactory.create(text="Alice wants invoice payment reminders on Mondays.", scope="user", scope_user=alice)
    got = _texts(memory_retrieve(user=sam, query=QUESTION, k=10))
    assert got == {
        "Invoices are paid within 30 days of the invoice date.",
        "Staff check that invoices are paid before a new order ships.",
        "Sam prefers invoices to be paid by bank transfer.",
    }
    assert "Alice wants invoice payment reminders on Mondays." in _texts(
        memory_retrieve(user=alice, query=QUESTION, k=10)
    )


def test_only_approved_memories_are_retrieved(sam: Any) -> None:
    for status in ("proposed", "rejected", "archived"):
        MemoryItemFactory.create(text=f"Invoices are paid within 30 days ({status}).", status=status)
    assert memory_retrieve(user=sam, query=QUESTION) == []
    MemoryItemFactory.create(text="Invoices are paid within 30 days (approved).", status="approved")
    assert _texts(memory_retrieve(user=sam, query=QUESTION)) == {"Invoices are paid within 30 days (approved)."}


def test_customer_memories_need_the_customer_and_access_to_it(sam: Any) -> None:
    visible = CustomerFactory.create(name="Elodie Durand")
    hidden = CustomerFactory.create(name="Marcus Webb", restricted=True)
    MemoryItemFactory.create(
        text="Elodie Durand pays invoices within 10 days.", scope="customer", scope_customer=visible
    )
    MemoryItemFactory.create(text="Marcus Webb pays invoices within 90 days.", scope="customer", scope_customer=hidden)
    assert memory_retrieve(user=sam, query=QUESTION) == []
    assert _texts(memory_retrieve(user=sam, query=QUESTION, customer_id=visible.pk)) == {
        "Elodie Durand pays invoices within 10 days."
    }
    assert memory_retrieve(user=sam, query=QUESTION, customer_id=hidden.pk) == []
    assign_perm("customers.view_customer", sam, hidden)
    assert _texts(memory_retrieve(user=sam, query=QUESTION, customer_id=hidden.pk)) == {
        "Marcus Webb pays invoices within 90 days."
    }


def test_the_scope_filter_is_in_the_query_so_k_results_survive_many_better_hidden_matches(sam: Any, alice: Any) -> None:
    for index in range(12):
        MemoryItemFactory.create(
            text=f"Invoices have to be paid within {index + 20} days.", scope="user", scope_user=alice
        )
    MemoryItemFactory.create(text="Payment of invoices is expected within a month.")
    got = memory_retrieve(user=sam, query=QUESTION, k=1)
    assert _texts(got) == {"Payment of invoices is expected within a month."}


def test_unrelated_questions_get_no_memories_and_use_is_recorded(sam: Any) -> None:
    memory = MemoryItemFactory.create(text="Invoices are paid within 30 days of the invoice date.")
    assert memory_retrieve(user=sam, query="Who won the football match yesterday?") == []
    memory.refresh_from_db()
    assert memory.last_used_at is None
    [retrieved] = memory_retrieve(user=sam, query=QUESTION)
    memory.refresh_from_db()
    assert retrieved.memory_id == memory.pk and retrieved.url == memory.get_absolute_url() and retrieved.score > 0.35
    assert memory.last_used_at is not None and memory.use_count == 1
    event = AuditEvent.objects.filter(action="memory.searched").latest("seq")
    assert event.details["memory_ids"] == [memory.pk]


def test_inactive_and_roleless_users_get_only_what_their_scope_allows(sam: Any, oscar: Any) -> None:
    MemoryItemFactory.create(
        text="Staff check invoices are paid.", scope="role", scope_role=Group.objects.get(name="Staff")
    )
    assert _texts(memory_retrieve(user=sam, query=QUESTION)) == {"Staff check invoices are paid."}
    assert memory_retrieve(user=oscar, query=QUESTION) == []
    sam.is_active = False
    sam.save()
    assert memory_retrieve(user=sam, query=QUESTION) == []
    assert MemoryItem.objects.count() == 1
