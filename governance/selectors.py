"""Reading governance data. Everything on the officer screens requires governance.manage_policies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from governance.models import PolicyDraft, PolicyVersion, TermList
from portal.core.config_cache import config_cached

MANAGE_POLICIES = "governance.manage_policies"
ERROR_MANAGE_POLICIES = "The governance screens are for governance officers."
ERROR_NO_POLICY = "No egress policy has been published."


def finding_counts(text: str) -> dict[str, int]:
    """How many values of each data class a text holds (for the trail's fingerprints of typed text)."""
    from governance.detection import detect

    counts: dict[str, int] = {}
    for finding in detect(text):
        counts[finding.data_class] = counts.get(finding.data_class, 0) + 1
    return counts


def require_policy_manager(actor: Any) -> None:
    if not actor.has_perm(MANAGE_POLICIES):
        raise PermissionDenied(ERROR_MANAGE_POLICIES)


def policy_current() -> PolicyVersion:
    """The policy in force: the most recently published version."""
    version = PolicyVersion.objects.order_by("-number").first()
    if version is None:
        raise LookupError(ERROR_NO_POLICY)
    return version


@dataclass(frozen=True)
class PolicyInForce:
    """The published version in force, by id and number, and its normalised document (shared: read only)."""

    pk: int
    number: int
    document: dict[str, Any]


def policy_in_force() -> PolicyInForce:
    """What the egress gate applies: kept per process until a version is published anywhere
    (portal.core.config_cache); LookupError when none is."""
    return config_cached("governance.policy_in_force", _policy_in_force_load)


def _policy_in_force_load() -> PolicyInForce:
    from governance.policy import normalise_document

    version = policy_current()
    return PolicyInForce(pk=version.pk, number=version.number, document=normalise_document(version.document))


def labels_sent_to_cloud(*, user: Any) -> frozenset[str]:
    """The knowledge-base labels whose passages this user's policy lets enter a cloud prompt ("send"); what
    it withholds or keeps local is not among them. No policy or none readable: none (the cautious answer)."""
    from governance.classes import LABELS, SEND
    from governance.gate import user_role_names
    from governance.policy import effective_policy

    try:
        policy = effective_policy(policy_in_force().document, user_role_names(user))
    except LookupError:
        return frozenset()
    return frozenset(label for label in LABELS if policy.label_action(label) == SEND)


def policy_versions(*, actor: Any) -> QuerySet[PolicyVersion]:
    require_policy_manager(actor)
    return PolicyVersion.objects.select_related("author", "restored_from").order_by("-number")


def policy_version_get(*, actor: Any, version_id: int) -> PolicyVersion:
    require_policy_manager(actor)
    return get_object_or_404(PolicyVersion.objects.select_related("author", "restored_from"), pk=version_id)


def policy_draft_get(*, actor: Any) -> PolicyDraft | None:
    require_policy_manager(actor)
    return PolicyDraft.objects.select_related("based_on", "updated_by").order_by("-updated_at").first()


def role_names() -> list[str]:
    return list(Group.objects.filter(role__isnull=False).order_by("role__position").values_list("name", flat=True))


def term_lists(*, actor: Any) -> QuerySet[TermList]:
    require_policy_manager(actor)
    return TermList.objects.select_related("updated_by").order_by("name")


def term_list_get(*, actor: Any, term_list_id: int) -> TermList:
    require_policy_manager(actor)
    return get_object_or_404(TermList, pk=term_list_id)


def knowledge_base_labels(*, actor: Any) -> list[dict[str, Any]]:
    """Every knowledge base with its label (officers see all of them: they decide where each may go)."""
    require_policy_manager(actor)
    from knowledge.selectors import knowledge_base_classifications

    return [{"id": pk, "name": name, "classification": label} for pk, name, label in knowledge_base_classifications()]
