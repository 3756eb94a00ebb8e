"""Knowledge bases and documents in the site admin: audited, scoped to what the user manages, and a
document's knowledge base is not a field to edit there (it moves with document_move)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from knowledge import selectors
from knowledge.models import Chunk, Document, KnowledgeBase, LexicalStatistics, Posting
from tests.knowledge.factories import KnowledgeBaseFactory, grant, ready_document

pytestmark = pytest.mark.django_db

SECRET_DESCRIPTION = "Payroll of the Leeds shop, by person"


def _client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def managed(alice: Any) -> KnowledgeBase:
    knowledge_base = KnowledgeBaseFactory.create(name="Handbook", classification="internal")
    grant(knowledge_base, "manage", role="Administrator")
    return knowledge_base


@pytest.fixture
def root() -> Any:
    from tests.accounts.factories import UserFactory

    return UserFactory.create(username="root", is_staff=True, is_superuser=True)


def _change(client: Client, knowledge_base: KnowledgeBase, **changes: str) -> Any:
    data = {"name": knowledge_base.name, "description": knowledge_base.description, "classification": "internal"}
    data.update(changes)
    return client.post(reverse("admin:knowledge_knowledgebase_change", args=[knowledge_base.pk]), data)


def test_a_classification_change_is_audited_with_before_and_after(alice: Any, managed: KnowledgeBase) -> None:
    response = _change(_client_for(alice), managed, classification="confidential", description=SECRET_DESCRIPTION)

    assert response.status_code == 302, response.content.decode()[:3000]
    managed.refresh_from_db()
    assert managed.classification == "confidential"
    event = AuditEvent.objects.get(action="knowledge.knowledgebase_changed")
    assert event.actor_username == "alice" and event.object_id == str(managed.pk)
    assert event.details["before"] == {"classification": "internal"}
    assert event.details["after"] == {"classification": "confidential"}
    assert event.details["fields"] == ["classification", "description"]
    assert "Leeds" not in str(event.details)  # free text: named, never copied


def test_a_failing_audit_leaves_the_classification_as_it_was(
    alice: Any, managed: KnowledgeBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(**kwargs: Any) -> None:
        raise RuntimeError("audit down")

    monkeypatch.setattr("audit.admin.audit", refuse)
    with pytest.raises(RuntimeError):
        _change(_client_for(alice), managed, classification="public")
    managed.refresh_from_db()
    assert managed.classification == "internal"


def test_an_administrator_sees_and_changes_only_the_bases_they_manage(alice: Any, managed: KnowledgeBase) -> None:
    other = KnowledgeBaseFactory.create(name="Board minutes", classification="confidential")
    client = _client_for(alice)

    listing = client.get(reverse("admin:knowledge_knowledgebase_changelist")).content.decode()
    assert "Handbook" in listing and "Board minutes" not in listing
    response = _change(client, other, classification="public")
    assert response.status_code == 302 and response["Location"] == reverse("admin:index")  # "does not exist"
    other.refresh_from_db()
    assert other.classification == "confidential"
    grant_url = reverse("admin:knowledge_knowledgebase_permissions_manage_user", args=[other.pk, alice.pk])
    assert client.post(grant_url, {"permissions": ["view_knowledgebase"]}).status_code == 404
    assert not alice.has_perm("knowledge.view_knowledgebase", other)


def test_granting_a_role_on_the_object_permissions_screen_is_audited(
    alice: Any, sam: Any, managed: KnowledgeBase
) -> None:
    staff = Group.objects.get(name="Staff")
    url = reverse("admin:knowledge_knowledgebase_permissions_manage_group", args=[managed.pk, staff.pk])

    assert _client_for(alice).post(url, {"permissions": ["view_knowledgebase"]}).status_code == 302

    assert managed in selectors.knowledge_bases_for_user(user=sam)
    event = AuditEvent.objects.get(action="knowledge.knowledgebase_access_changed")
    assert event.object_id == str(managed.pk) and event.actor_username == "alice"
    assert event.details["role"] == "Staff" and event.details["group_id"] == staff.pk
    assert (event.details["before"], event.details["after"]) == ([], ["view_knowledgebase"])


def test_granting_a_user_on_the_object_permissions_screen_is_audited(
    alice: Any, oscar: Any, managed: KnowledgeBase
) -> None:
    url = reverse("admin:knowledge_knowledgebase_permissions_manage_user", args=[managed.pk, oscar.pk])
    client = _client_for(alice)

    client.post(url, {"permissions": ["view_knowledgebase", "change_knowledgebase"]})
    client.post(url, {"permissions": ["view_knowledgebase"]})

    events = list(AuditEvent.objects.filter(action="knowledge.knowledgebase_access_changed").order_by("seq"))
    assert [event.details["after"] for event in events] == [
        ["change_knowledgebase", "view_knowledgebase"],
        ["view_knowledgebase"],
    ]
    assert events[1].details["removed"] == ["change_knowledgebase"]
    assert events[1].details["user"] == "oscar" and events[1].details["user_id"] == oscar.pk


def test_a_document_keeps_its_knowledge_base_when_the_admin_form_names_another(root: Any, managed: Any) -> None:
    other = KnowledgeBaseFactory.create(name="Elsewhere")
    document = ready_document(managed, "leave.md", b"Annual leave is twenty-five days.")
    auditors = Group.objects.get(name="Auditor")

    response = _client_for(root).post(
        reverse("admin:knowledge_document_change", args=[document.pk]),
        {"knowledge_base": str(other.pk), "title": "Renamed", "restricted_to_roles": [str(auditors.pk)]},
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    document.refresh_from_db()
    assert (document.knowledge_base_id, document.title) == (managed.pk, "leave")
    assert set(Chunk.objects.filter(document=document).values_list("knowledge_base_id", flat=True)) == {managed.pk}
    assert list(document.restricted_to_roles.all()) == [auditors]
    event = AuditEvent.objects.get(action="knowledge.document_changed")
    assert event.details["fields"] == ["restricted_to_roles"]
    assert (event.details["before"], event.details["after"]) == (
        {"restricted_to_roles": []},
        {"restricted_to_roles": ["Auditor"]},
    )


def test_deleting_a_document_in_the_admin_goes_through_the_service(alice: Any, managed: KnowledgeBase) -> None:
    document = ready_document(managed, "leave.md", b"Annual leave is twenty-five days.")
    assert LexicalStatistics.objects.get(knowledge_base=managed).chunk_count > 0

    response = _client_for(alice).post(reverse("admin:knowledge_document_delete", args=[document.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert not Document.objects.filter(pk=document.pk).exists()
    assert not Posting.objects.filter(document_id=document.pk).exists()
    statistics = LexicalStatistics.objects.get(knowledge_base=managed)
    assert (statistics.chunk_count, statistics.total_length) == (0, 0)  # the service's bookkeeping
    assert AuditEvent.objects.filter(action="knowledge.document_deleted", object_id=str(document.pk)).count() == 1


def test_an_administrator_does_not_see_documents_of_bases_they_may_not_change(alice: Any, managed: Any) -> None:
    hidden = KnowledgeBaseFactory.create(name="Hidden")
    ready_document(hidden, "merger.md", b"Merger plan.")
    ready_document(managed, "leave.md", b"Annual leave.")
    listing = _client_for(alice).get(reverse("admin:knowledge_document_changelist")).content.decode()
    assert "leave" in listing and "merger" not in listing
    assert "Hidden" not in listing  # not even in the knowledge base filter
