"""Random grants against a plain model of who may read what, through the real search statements.

The rule (knowledge/search.py acl_for, README "Knowledge"): a chunk is readable when its knowledge base
grants the user view permission, directly or through one of their roles, and its document is either not
restricted, restricted to a role the user has, or in a knowledge base the user may change (editors see
every document). Superusers read everything. A search asked to cover some knowledge bases covers only
those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, Group
from django.db import transaction
from guardian.shortcuts import assign_perm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knowledge import embeddings, search, selectors
from knowledge.models import Chunk, Document, KnowledgeBase
from tests.accounts.factories import UserFactory
from tests.knowledge.factories import KnowledgeBaseFactory, ready_document

pytestmark = pytest.mark.django_db

QUERY = "bicycle repair workshop"
ROLES = ("Staff", "Auditor", "Governance officer")
LEVELS = ("view", "change")
BASES, DOCUMENTS_PER_BASE, USERS = 3, 2, 3


@dataclass(frozen=True)
class Corpus:
    bases: tuple[KnowledgeBase, ...]
    documents: tuple[Document, ...]  # DOCUMENTS_PER_BASE per base, in base order
    chunk_document: dict[int, int]  # chunk id -> document id
    users: tuple[Any, ...]
    groups: dict[str, Group]


@pytest.fixture
def corpus(db: None) -> Corpus:
    """Made once per test (not per example): the grants change, the documents and their vectors do not."""
    bases = tuple(KnowledgeBaseFactory.create(name=f"Property KB {n}") for n in range(BASES))
    documents = tuple(
        ready_document(base, f"doc-{b}-{d}.md", f"The bicycle repair workshop note {b}.{d}.".encode())
        for b, base in enumerate(bases)
        for d in range(DOCUMENTS_PER_BASE)
    )
    chunks = dict(Chunk.objects.filter(document__in=documents).values_list("id", "document_id"))
    assert sorted(set(chunks.values())) == sorted(document.pk for document in documents)
    embeddings.embed_query(QUERY)  # every search below reuses this cached vector
    users = tuple(UserFactory.create(username=f"reader{n}", roles=[]) for n in range(USERS))
    return Corpus(bases, documents, chunks, users, {name: Group.objects.get(name=name) for name in ROLES})


role_sets = st.frozensets(st.sampled_from(ROLES))
level_sets = st.frozensets(st.sampled_from(LEVELS))


@dataclass(frozen=True)
class Grants:
    memberships: tuple[frozenset[str], ...]  # per user
    superusers: tuple[bool, ...]  # per user
    user_levels: tuple[tuple[frozenset[str], ...], ...]  # per user, per base
    role_levels: dict[str, tuple[frozenset[str], ...]]  # per role, per base
    restricted: tuple[frozenset[str], ...]  # per document: roles it is restricted to (empty: none)
    scope: frozenset[int] | None  # base indexes a search asks for (None: all)


grants_strategy = st.builds(
    Grants,
    memberships=st.tuples(*[role_sets] * USERS),
    superusers=st.tuples(*[st.just(False)] * (USERS - 1), st.booleans()),  # the last reader may be a superuser
    user_levels=st.tuples(*[st.tuples(*[level_sets] * BASES)] * USERS),
    role_levels=st.fixed_dictionaries({role: st.tuples(*[level_sets] * BASES) for role in ROLES}),
    restricted=st.tuples(*[role_sets] * (BASES * DOCUMENTS_PER_BASE)),
    scope=st.none() | st.frozensets(st.integers(0, BASES - 1)),
)


def may_read(grants: Grants, user_index: int, document_index: int) -> bool:
    """The rule, in plain Python."""
    base = document_index // DOCUMENTS_PER_BASE
    if grants.scope is not None and base not in grants.scope:
        return False
    if grants.superusers[user_index]:
        return True
    roles = grants.memberships[user_index]

    def has(level: str) -> bool:
        return level in grants.user_levels[user_index][base] or any(
            level in grants.role_levels[role][base] for role in roles
        )

    restricted_to = grants.restricted[document_index]
    return has("view") and (not restricted_to or bool(restricted_to & roles) or has("change"))


def _apply(corpus: Corpus, grants: Grants) -> None:
    for index, user in enumerate(corpus.users):
        user.groups.set([corpus.groups[role] for role in grants.memberships[index]])
        user.is_superuser = grants.superusers[index]
        user.save(update_fields=["is_superuser"])
        for base, levels in zip(corpus.bases, grants.user_levels[index], strict=True):
            for level in levels:
                assign_perm(f"knowledge.{level}_knowledgebase", user, base)
    for role, per_base in grants.role_levels.items():
        for base, levels in zip(corpus.bases, per_base, strict=True):
            for level in levels:
                assign_perm(f"knowledge.{level}_knowledgebase", corpus.groups[role], base)
    for document, roles in zip(corpus.documents, grants.restricted, strict=True):
        document.restricted_to_roles.set([corpus.groups[role] for role in roles])


class _RollBack(Exception):
    """Undo one example's grants (a savepoint inside the test's transaction)."""


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(grants=grants_strategy)
def test_both_search_legs_return_exactly_what_the_model_says_each_user_may_read(corpus: Corpus, grants: Grants) -> None:
    vector = embeddings.embed_query(QUERY)
    try:
        with transaction.atomic():
            _apply(corpus, grants)
            scope = None if grants.scope is None else [corpus.bases[i].pk for i in sorted(grants.scope)]
            for user_index, user in enumerate(corpus.users):
                user.refresh_from_db()
                expected = {
                    document.pk
                    for document_index, document in enumerate(corpus.documents)
                    if may_read(grants, user_index, document_index)
                }
                acl = search.acl_for(user, scope)
                lexical = search.lexical_search(QUERY, acl, 50)
                nearest = search.vector_search(vector, acl, 50)
                assert {corpus.chunk_document[chunk_id] for chunk_id, _ in lexical} == expected, (user_index, "bm25")
                assert {corpus.chunk_document[chunk_id] for chunk_id, _ in nearest} == expected, (user_index, "vector")
            raise _RollBack
    except _RollBack:
        pass


def test_retrieve_applies_the_same_rule(corpus: Corpus) -> None:
    """One fixed case through knowledge.selectors.retrieve, the door the assistant uses."""
    reader, editor, _ = corpus.users
    reader.groups.set([corpus.groups["Staff"]])
    assign_perm("knowledge.view_knowledgebase", corpus.groups["Staff"], corpus.bases[0])
    assign_perm("knowledge.view_knowledgebase", editor, corpus.bases[0])
    assign_perm("knowledge.change_knowledgebase", editor, corpus.bases[0])
    restricted, open_document = corpus.documents[0], corpus.documents[1]
    restricted.restricted_to_roles.set([corpus.groups["Auditor"]])

    def documents(user: Any) -> set[int]:
        found = selectors.retrieve(user=user, query=QUERY, k=50, audit_event=False)
        return {corpus.chunk_document[chunk.chunk_id] for chunk in found}

    assert documents(reader) == {open_document.pk}
    assert documents(editor) == {restricted.pk, open_document.pk}


def test_nobody_signed_in_reads_nothing(corpus: Corpus) -> None:
    for user in (AnonymousUser(), None):
        assert selectors.retrieve(user=user, query=QUERY, k=50, audit_event=False) == []  # type: ignore[arg-type]
