"""knowledge_bases_readable_among answers as knowledge_bases_for_user's guardian query does."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from guardian.shortcuts import assign_perm

from knowledge.selectors import knowledge_bases_for_user, knowledge_bases_readable_among
from tests.accounts.factories import UserFactory
from tests.knowledge.factories import KnowledgeBaseFactory

pytestmark = pytest.mark.django_db


def _both(user: Any, bases: list[Any]) -> list[str]:
    ids = [base.pk for base in bases]
    ours = knowledge_bases_readable_among(user=user, knowledge_base_ids=ids)
    guardian = list(knowledge_bases_for_user(user=user).filter(pk__in=ids).order_by("pk"))
    assert ours == guardian
    return [base.name for base in ours]


def test_grants_to_the_user_or_a_role_count_and_nothing_else() -> None:
    staff = UserFactory.create(roles=["Staff"])
    mine, roles, others, edit_only, unlisted, none = (KnowledgeBaseFactory.create(name=n) for n in "ABCDEF")
    assign_perm("knowledge.view_knowledgebase", staff, mine)
    assign_perm("knowledge.view_knowledgebase", Group.objects.get(name="Staff"), roles)
    assign_perm("knowledge.view_knowledgebase", Group.objects.create(name="Others"), others)
    assign_perm("knowledge.change_knowledgebase", staff, edit_only)
    unlisted.unlisted = True
    unlisted.save()
    assign_perm("knowledge.view_knowledgebase", staff, unlisted)
    assert _both(staff, [mine, roles, others, edit_only, unlisted, none]) == ["A", "B"]


def test_a_superuser_reads_every_listed_base_and_nobody_signed_in_none() -> None:
    from django.contrib.auth.models import AnonymousUser

    root = UserFactory.create(roles=[], is_superuser=True)
    bases = [KnowledgeBaseFactory.create(name=n) for n in "XY"]
    assert _both(root, bases) == ["X", "Y"]
    assert knowledge_bases_readable_among(user=AnonymousUser(), knowledge_base_ids=[b.pk for b in bases]) == []
    assert knowledge_bases_readable_among(user=root, knowledge_base_ids=[]) == []
