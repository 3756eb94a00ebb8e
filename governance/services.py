"""Changing governance: policy drafts, publication, restore, term lists. Each change is audited in the
same transaction."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.privacy import text_fingerprint
from audit.services import audit
from governance import known_entities
from governance.models import PolicyDraft, PolicyVersion, TermList
from governance.policy import document_diff, normalise_document
from governance.roles import ROLE_ORDER
from governance.selectors import require_policy_manager, role_names

ERROR_REASON_REQUIRED = "Say why this change is made; the reason is kept with the version."
ERROR_NOTHING_CHANGED = "This publication would change nothing: the rules equal the version in force."
ERROR_NO_DRAFT = "There is no draft to publish."


def _document_sha256(document: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@transaction.atomic
def policy_draft_save(*, actor: Any, document: dict[str, Any]) -> PolicyDraft:
    require_policy_manager(actor)
    normalised = normalise_document(document, role_names())
    current = PolicyVersion.objects.order_by("-number").first()
    draft = PolicyDraft.objects.select_for_update().order_by("-updated_at").first() or PolicyDraft()
    draft.document = normalised
    draft.based_on = draft.based_on or current
    draft.updated_by = actor
    draft.updated_at = timezone.now()
    draft.full_clean()
    draft.save()
    changes = document_diff(current.document if current else None, normalised)
    audit(actor=actor, action="governance.policy_draft_saved", target=draft, details={"pending_changes": len(changes)})
    return draft


@transaction.atomic
def policy_draft_discard(*, actor: Any) -> None:
    require_policy_manager(actor)
    deleted, _ = PolicyDraft.objects.all().delete()
    if deleted:
        audit(actor=actor, action="governance.policy_draft_discarded", object_type="governance.policydraft")


@transaction.atomic
def policy_publish(
    *, actor: Any, reason: str, document: dict[str, Any] | None = None, restored_from: PolicyVersion | None = None
) -> PolicyVersion:
    """Publish `document` (default: the draft) as a new immutable version; it applies to the next prompt."""
    if actor is not None:
        require_policy_manager(actor)
    reason = reason.strip()
    if not reason:
        raise ValidationError(ERROR_REASON_REQUIRED)
    if document is None:
        draft = PolicyDraft.objects.select_for_update().order_by("-updated_at").first()
        if draft is None:
            raise ValidationError(ERROR_NO_DRAFT)
        document = draft.document
    normalised = normalise_document(document, role_names())
    # Lock the head so two officers publishing at once get consecutive numbers and correct diffs.
    previous = PolicyVersion.objects.select_for_update().order_by("-number").first()
    diff = document_diff(previous.document if previous else None, normalised)
    if previous is not None and not diff:
        raise ValidationError(ERROR_NOTHING_CHANGED)
    version = PolicyVersion(
        number=(previous.number + 1) if previous else 1,
        document=normalised,
        author=actor,
        reason=reason,
        restored_from=restored_from,
        diff=diff,
    )
    version.full_clean()
    version.save()
    PolicyDraft.objects.all().delete()
    audit(
        actor=actor,
        action="governance.policy_restored" if restored_from else "governance.policy_published",
        target=version,
        details={
            "version": version.number,
            "previous_version": previous.number if previous else None,
            "restored_from_version": restored_from.number if restored_from else None,
            "changes": diff,
            "document_sha256": _document_sha256(normalised),
            **text_fingerprint(reason, name="reason"),  # the typed reason stays on the version row
        },
    )
    return version


def policy_restore(*, actor: Any, version: PolicyVersion, reason: str) -> PolicyVersion:
    """Bring an earlier version back by publishing a copy of it (history is never rewritten)."""
    return policy_publish(actor=actor, reason=reason, document=version.document, restored_from=version)


def _term_lines(terms: str) -> str:
    return "\n".join(dict.fromkeys(line.strip() for line in terms.splitlines() if line.strip()))


@transaction.atomic
def term_list_save(
    *, actor: Any, name: str, data_class: str, terms: str, description: str = "", term_list: TermList | None = None
) -> TermList:
    require_policy_manager(actor)
    creating = term_list is None
    item = term_list or TermList()
    item.name = name.strip()
    item.data_class = data_class
    item.description = description.strip()
    item.terms = _term_lines(terms)
    item.updated_by = actor
    item.updated_at = timezone.now()
    item.full_clean()
    item.save()
    # the terms themselves may be sensitive: the audit trail keeps how many, not which
    audit(
        actor=actor,
        action="governance.term_list_created" if creating else "governance.term_list_changed",
        target=item,
        details={"name": item.name, "data_class": item.data_class, "terms": len(item.term_values())},
    )
    transaction.on_commit(known_entities.invalidate)
    return item


@transaction.atomic
def term_list_delete(*, actor: Any, term_list: TermList) -> None:
    require_policy_manager(actor)
    audit(
        actor=actor,
        action="governance.term_list_deleted",
        target=term_list,
        details={"name": term_list.name, "terms": len(term_list.term_values())},
    )
    term_list.delete()
    transaction.on_commit(known_entities.invalidate)


def policy_defaults_ensure(sender: Any = None, **kwargs: Any) -> None:
    """After migrate/flush: make sure a policy is in force (a new install gets the safe defaults)."""
    from governance.policy import default_document

    using = kwargs.get("using", "default")
    if PolicyVersion.objects.using(using).exists():
        return
    document = default_document(role_names() or ROLE_ORDER)
    with transaction.atomic(using=using):
        version = PolicyVersion.objects.using(using).create(
            number=1, document=document, reason="Safe defaults of a new install.", diff=document_diff(None, document)
        )
        audit(
            actor=None,
            actor_username="system",
            action="governance.policy_published",
            target=version,
            details={"number": 1, "reason": version.reason, "source": "defaults of a new install"},
        )
