"""The permission filter's sets kept per user and process (knowledge.search.acl_for): a change committed by any
other connection (another web process, the site admin, plain SQL) applies at the very next search, also inside
a pinned phase of a question; unchanged, a search pays one small query for them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType

from knowledge import search, services
from knowledge.models import Document, KnowledgeBase
from portal.core import config_cache
from portal.core.config_cache import config_forget, config_generation, config_generation_pinned
from tests.database import in_another_thread, other_connection_sql
from tests.knowledge.factories import KnowledgeBaseFactory, grant, ready_document

pytestmark = pytest.mark.django_db(transaction=True)

QUERY = "lighthouse keeper logbook"


@pytest.fixture(autouse=True)
def _nothing_kept() -> Iterator[None]:
    config_forget()
    yield
    config_forget()


@pytest.fixture
def bases(sam: Any) -> dict[str, Any]:
    """A base Staff reads with one open and one officers-only document, and a base nobody reads."""
    read = KnowledgeBaseFactory.create(name="Read KB")
    grant(read, "view", role="Staff")
    unread = KnowledgeBaseFactory.create(name="Unread KB")
    return {
        "read": read,
        "unread": unread,
        "open": ready_document(read, "open.md", b"The lighthouse keeper logbook of the harbour."),
        "restricted": ready_document(
            read, "restricted.md", b"Lighthouse keeper logbook salaries.", roles=["Governance officer"]
        ),
        "elsewhere": ready_document(unread, "elsewhere.md", b"Lighthouse keeper logbook of another harbour."),
    }


def _found(user: Any) -> set[int]:
    """The documents whose chunks the user's search finds (both legs)."""
    ids = [chunk_id for chunk_id, _ in search.hybrid_search(QUERY, search.acl_for(user), 20)]
    return set(Document.objects.filter(chunks__id__in=ids).values_list("pk", flat=True))


def _view_permission_id() -> int:
    return Permission.objects.get(
        codename="view_knowledgebase", content_type=ContentType.objects.get_for_model(KnowledgeBase)
    ).pk


def test_an_unchanged_user_costs_one_small_query_for_the_permission_sets(
    bases: dict[str, Any], sam: Any, django_assert_num_queries: Any
) -> None:
    search.acl_for(sam)
    with django_assert_num_queries(2) as captured:  # the generation, and which of the bases are unlisted
        acl = search.acl_for(sam)
    assert "core_configgeneration" in captured.captured_queries[0]["sql"]
    assert acl.knowledge_base_ids == [bases["read"].pk]
    assert acl.params[1] == [bases["restricted"].pk]


def test_each_user_keeps_their_own_sets(bases: dict[str, Any], sam: Any, olivia: Any) -> None:
    assert _found(sam) == {bases["open"].pk}
    assert _found(olivia) == set()  # the officer has no grant on the base
    grant(bases["read"], "view", role="Governance officer")
    assert _found(olivia) == {bases["open"].pk, bases["restricted"].pk}
    assert _found(sam) == {bases["open"].pk}


def test_a_role_grant_committed_elsewhere_applies_at_the_next_search(bases: dict[str, Any], sam: Any) -> None:
    assert _found(sam) == {bases["open"].pk}
    staff = Group.objects.get(name="Staff")
    other_connection_sql(
        "INSERT INTO guardian_groupobjectpermission (object_pk, content_type_id, group_id, permission_id) "
        "VALUES (%s, %s, %s, %s)",
        [str(bases["unread"].pk), ContentType.objects.get_for_model(KnowledgeBase).pk, staff.pk,
         _view_permission_id()],
    )  # fmt: skip
    assert _found(sam) == {bases["open"].pk, bases["elsewhere"].pk}


def test_a_user_grant_revoked_elsewhere_applies_at_the_next_search(bases: dict[str, Any], oscar: Any) -> None:
    grant(bases["unread"], "view", user=oscar)
    assert _found(oscar) == {bases["elsewhere"].pk}
    other_connection_sql("DELETE FROM guardian_userobjectpermission WHERE user_id = %s", [oscar.pk])
    assert _found(oscar) == set()


def test_leaving_a_role_elsewhere_applies_at_the_next_search(bases: dict[str, Any], sam: Any) -> None:
    assert _found(sam) == {bases["open"].pk}
    other_connection_sql("DELETE FROM auth_user_groups WHERE user_id = %s", [sam.pk])
    assert _found(sam) == set()


def test_joining_the_restricting_role_elsewhere_applies_at_the_next_search(bases: dict[str, Any], sam: Any) -> None:
    assert _found(sam) == {bases["open"].pk}
    officers = Group.objects.get(name="Governance officer")
    other_connection_sql("INSERT INTO auth_user_groups (user_id, group_id) VALUES (%s, %s)", [sam.pk, officers.pk])
    assert _found(sam) == {bases["open"].pk, bases["restricted"].pk}


def test_a_restriction_set_elsewhere_applies_at_the_next_search(bases: dict[str, Any], sam: Any) -> None:
    assert _found(sam) == {bases["open"].pk}
    officers = Group.objects.get(name="Governance officer")
    in_another_thread(lambda: services.document_set_restriction(actor=None, document=bases["open"], roles=[officers]))
    assert _found(sam) == set()


def test_a_restricted_document_moved_into_a_read_base_stays_hidden(bases: dict[str, Any], sam: Any) -> None:
    """The hidden documents are those of the bases the user reads: a move changes which those are."""
    secret = ready_document(bases["unread"], "secret.md", b"Lighthouse keeper logbook codes.", roles=["Auditor"])
    assert _found(sam) == {bases["open"].pk}
    in_another_thread(lambda: services.document_move(actor=None, document=secret, knowledge_base=bases["read"]))
    assert _found(sam) == {bases["open"].pk}
    assert secret.pk in search.acl_for(sam).params[1]


def test_a_document_written_without_a_move_keeps_the_sets(bases: dict[str, Any], sam: Any) -> None:
    """Documents are written often (status, progress): only a change of base moves the generation."""
    before = config_generation()
    Document.objects.filter(pk=bases["open"].pk).update(title="Renamed", knowledge_base_id=bases["read"].pk)
    assert config_generation() == before
    Document.objects.filter(pk=bases["open"].pk).update(knowledge_base_id=bases["unread"].pk)
    assert config_generation() != before


def test_editing_rights_granted_elsewhere_show_the_restricted_documents(bases: dict[str, Any], sam: Any) -> None:
    assert _found(sam) == {bases["open"].pk}
    in_another_thread(lambda: grant(bases["read"], "change", role="Staff"))
    assert _found(sam) == {bases["open"].pk, bases["restricted"].pk}


def test_inside_a_pinned_phase_a_permission_change_still_applies_at_the_next_search(
    bases: dict[str, Any], sam: Any
) -> None:
    with config_generation_pinned():
        assert _found(sam) == {bases["open"].pk}
        other_connection_sql("DELETE FROM auth_user_groups WHERE user_id = %s", [sam.pk])
        assert _found(sam) == set()


def test_only_the_users_searched_last_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_cache, "ITEMS_KEPT", 2)
    loads: list[int] = []

    def loader(item: int) -> Callable[[], int]:
        def load() -> int:
            loads.append(item)
            return item * 10

        return load

    for item in (1, 2, 1, 3, 1, 2):
        assert config_cache.config_cached_item("test.items", item, loader(item)) == item * 10
    assert loads == [1, 2, 3, 2]  # 1 stayed (used last but one each time); 2 was dropped for 3
