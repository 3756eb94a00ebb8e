from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from portal.assistant.models import MessageRole
from portal.memory.models import MemoryItem
from tests.assistant.factories import AssistantProfileFactory, ConversationFactory, MessageFactory
from tests.customers.factories import CustomerFactory
from tests.memory.factories import MemoryItemFactory

pytestmark = pytest.mark.django_db


def _client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_memory_page_lists_and_filters_what_the_user_may_see(sam: Any, alice: Any) -> None:
    MemoryItemFactory.create(text="Organisation fact about deliveries.", kind="fact")
    MemoryItemFactory.create(text="Procedure for returns.", kind="procedure")
    MemoryItemFactory.create(text="Alice's own preference.", scope="user", scope_user=alice)
    MemoryItemFactory.create(
        text="Admin-only decision.", scope="role", scope_role=Group.objects.get(name="Administrator")
    )
    MemoryItemFactory.create(text="Unreviewed proposal.", status="proposed")
    client = _client_for(sam)
    body = client.get(reverse("memory:memory_list")).content.decode()
    assert "Organisation fact about deliveries." in body and "Procedure for returns." in body
    for hidden in ("Alice&#x27;s own preference.", "Admin-only decision.", "Unreviewed proposal."):
        assert hidden not in body
    fragment = client.get(reverse("memory:memory_list"), {"kind": "procedure"}, HTTP_HX_REQUEST="true").content.decode()
    assert "Procedure for returns." in fragment and "deliveries" not in fragment and "<html" not in fragment
    admin_body = _client_for(alice).get(reverse("memory:memory_list"), {"status": "proposed"}).content.decode()
    assert "Unreviewed proposal." in admin_body and "deliveries" not in admin_body


def test_people_without_the_memory_permission_get_403(oscar: Any) -> None:
    memory = MemoryItemFactory.create()
    client = _client_for(oscar)
    assert client.get(reverse("memory:memory_list")).status_code == 403
    assert client.get(reverse("memory:memory_detail", args=[memory.pk])).status_code == 403


def test_someone_elses_personal_memory_is_a_404(sam: Any, alice: Any) -> None:
    memory = MemoryItemFactory.create(scope="user", scope_user=alice)
    assert _client_for(sam).get(reverse("memory:memory_detail", args=[memory.pk])).status_code == 404
    assert _client_for(sam).post(reverse("memory:memory_delete", args=[memory.pk])).status_code == 404
    assert _client_for(alice).get(reverse("memory:memory_detail", args=[memory.pk])).status_code == 200


def test_staff_propose_and_a_reviewer_approves_from_the_queue(sam: Any, olivia: Any, audrey: Any) -> None:
    response = _client_for(sam).post(
        reverse("memory:memory_create"),
        {
            "text": "Deliveries to Scotland take three days.",
            "kind": "fact",
            "scope": "organisation",
            "sensitivity": "internal",
        },
    )
    memory = MemoryItem.objects.get()
    assert response.status_code == 302 and memory.status == "proposed"
    review_url = reverse("memory:memory_review", args=[memory.pk])
    assert _client_for(sam).post(review_url, {"decision": "approve"}).status_code == 403
    assert _client_for(audrey).post(review_url, {"decision": "approve"}).status_code == 404  # not hers to see yet
    approved = MemoryItemFactory.create(text="Approved and visible to the auditor.")
    assert _client_for(audrey).get(reverse("memory:memory_detail", args=[approved.pk])).status_code == 200
    assert (
        _client_for(audrey).post(reverse("memory:memory_archive", args=[approved.pk])).status_code == 403
    )  # read-only
    queue = _client_for(olivia).get(reverse("memory:review_queue")).content.decode()
    assert "Deliveries to Scotland take three days." in queue
    assert _client_for(olivia).post(review_url, {"decision": "approve", "next": "queue"}).status_code == 302
    memory.refresh_from_db()
    assert memory.status == "approved" and memory.reviewed_by == olivia


def test_a_reviewer_edits_a_memory_and_bad_input_is_a_400(alice: Any) -> None:
    memory = MemoryItemFactory.create(text="Old wording.")
    client = _client_for(alice)
    bad = client.post(
        reverse("memory:memory_detail", args=[memory.pk]),
        {"text": "", "kind": "fact", "scope": "role", "sensitivity": "internal"},
    )
    assert bad.status_code == 400
    good = client.post(
        reverse("memory:memory_detail", args=[memory.pk]),
        {
            "text": "New wording.",
            "kind": "decision",
            "scope": "role",
            "scope_role": Group.objects.get(name="Staff").pk,
            "sensitivity": "confidential",
        },
    )
    assert good.status_code == 302
    memory.refresh_from_db()
    assert (memory.text, memory.kind, memory.scope, memory.sensitivity) == (
        "New wording.",
        "decision",
        "role",
        "confidential",
    )


def test_deleting_from_the_page_needs_the_right(sam: Any, alice: Any) -> None:
    memory = MemoryItemFactory.create()
    assert _client_for(sam).post(reverse("memory:memory_delete", args=[memory.pk])).status_code == 403
    assert _client_for(alice).post(reverse("memory:memory_delete", args=[memory.pk])).status_code == 302
    assert not MemoryItem.objects.exists()


def test_remember_this_on_an_answer_proposes_it_for_the_conversations_customer(sam: Any, alice: Any) -> None:
    customer = CustomerFactory.create(name="Elodie Durand")
    conversation = ConversationFactory.create(
        owner=sam, profile=AssistantProfileFactory.create(usable_by=["Staff"]), customer_id=customer.pk
    )
    answer = MessageFactory.create(
        conversation=conversation, role=MessageRole.ASSISTANT, content="Elodie prefers calls after 2 pm."
    )
    url = reverse("memory:remember", args=[answer.pk])
    form = _client_for(sam).get(url)
    assert form.status_code == 200 and "Elodie prefers calls after 2 pm." in form.content.decode()
    assert _client_for(alice).get(url).status_code == 404  # not alice's conversation
    response = _client_for(sam).post(
        url,
        {
            "text": "Elodie prefers calls after 2 pm.",
            "kind": "preference",
            "scope": "customer",
            "scope_customer": customer.pk,
            "sensitivity": "internal",
        },
    )
    assert response.status_code == 302
    memory = MemoryItem.objects.get()
    assert memory.status == "proposed" and memory.source == "conversation"
    assert memory.source_message_id == answer.pk and memory.scope_customer == customer


def test_asking_for_proposals_queues_the_learning_task(
    sam: Any, alice: Any, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from portal.memory import tasks

    queued: list[int] = []
    monkeypatch.setattr(tasks.memory_learn_from_conversation_task, "delay", queued.append)
    conversation = ConversationFactory.create(owner=sam, profile=AssistantProfileFactory.create(usable_by=["Staff"]))
    url = reverse("memory:learn", args=[conversation.pk])
    assert _client_for(alice).post(url).status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        assert _client_for(sam).post(url).status_code == 302
    assert queued == [conversation.pk]
