"""The egress gate: the one door between a locally built prompt and a model.

Contract shared by the assistant (which builds prompt parts), governance (which decides what of them
may leave) and routing (which refuses anything the gate did not seal):

    parts = [PromptPart(kind="instructions", text=..., role="system"), PromptPart(kind="chunk", ...), ...]
    gated = egress_gate(user=user, conversation_key="conv-42", destinations=[...], parts=parts)
    # gated.messages: exactly what may be sent; gated.manifest: what was found/sent/withheld and why
    # gated.destinations: the subset of the candidate destinations this prompt is cleared for
    router call -> verify_sealed(gated, destination) before any byte leaves
    restorer = gated.restorer(); shown = restorer.feed(chunk) ...; shown += restorer.finish()

What happens inside (`_apply_policy` and its named steps; docs/architecture.md):
1. every part is classified (governance.detection: patterns, known entities, optional NER);
2. the policy of the user's roles (the strictest of them) decides per data class: allow, pseudonymize,
   abstract, redact or block (a sensitive caller, such as a profile marked sensitive, abstracts every
   personal class at least); per knowledge-base label: send, withhold or local only; per provider: allowed or not;
3. pseudonymized values get per-conversation placeholders from the encrypted vault;
4. the manifest records all of it (counts and placeholders, never a value) and the prompt is sealed.
Any failure on the way raises EgressBlocked: nothing is sent (fail closed).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.db import transaction

from governance import classes as dc
from portal.core import memberships

logger = logging.getLogger(__name__)

PART_KINDS = ("instructions", "history", "chunk", "memory", "customer", "question")
ERROR_NOT_SEALED = "This prompt did not pass the egress gate; it is not sent."
ERROR_WRONG_DESTINATION = "This prompt was not cleared for {destination}; it is not sent."
ERROR_UNKNOWN_PART = "The prompt has a part of an unknown kind; it is not sent."
ERROR_POLICY_UNAVAILABLE = (
    "The egress policy could not be loaded, so nothing was sent. Please tell a governance officer."
)
ERROR_DETECTION_FAILED = "The prompt could not be checked for sensitive data, so nothing was sent. Please try again."
ERROR_VAULT_FAILED = "The pseudonymization vault is unavailable, so nothing was sent. Please tell an administrator."
ERROR_NO_DESTINATION = "No model is allowed to receive this prompt under your role's policy: {reasons}."
ERROR_BLOCKED_CONTENT = "your {where} contains {classes}, which your role's policy blocks from cloud models"
ERROR_LOCAL_CONTENT = "local-only knowledge can only be answered by the local model"
# Parts whose blocked content is simply left out; blocked content anywhere else stops the prompt.
WITHHOLDABLE_KINDS = frozenset({"chunk", "memory", "customer"})
GATE_NAME = "policy"
APPLIED = ("pseudonymized", "abstracted", "redacted")  # manifest keys of what was done to values, per class


class EgressBlocked(PermissionError):
    """The gate refused to let this prompt leave; the message says why and is safe to show."""


@dataclass(frozen=True)
class Destination:
    """Where a prompt may go: one model deployment of the routing catalog."""

    key: str  # stable id, e.g. "model:12" or "offline"
    provider: str  # e.g. "anthropic", "openai", "offline"
    is_local: bool = False  # the built-in offline model: nothing leaves the server
    zero_data_retention: bool = False
    region: str = ""


@dataclass(frozen=True)
class PromptPart:
    kind: str  # one of PART_KINDS
    text: str
    role: str = "user"  # chat role when sent: "system", "user" or "assistant"
    source: dict[str, Any] = field(default_factory=dict)  # e.g. chunk id, knowledge base id and label


class Restorer(Protocol):
    def feed(self, text: str) -> str: ...

    def finish(self) -> str: ...


class PassThroughRestorer:
    def feed(self, text: str) -> str:
        return text

    def finish(self) -> str:
        return ""


@dataclass(frozen=True)
class GatedPrompt:
    messages: tuple[dict[str, str], ...]
    manifest: dict[str, Any]
    destinations: tuple[str, ...]  # Destination.key values this prompt is cleared for
    seal: str
    conversation_key: str = ""

    def restorer(self) -> Restorer:
        from governance.restore import PlaceholderRestorer

        # The values live beside the dataclass fields, so asdict()/repr() of a GatedPrompt never holds them.
        entries: Mapping[str, str] = getattr(self, "_vault_entries", {})
        return PlaceholderRestorer(entries) if entries else PassThroughRestorer()

    @property
    def prompt_sha256(self) -> str:
        return hashlib.sha256(_canonical(self.messages).encode()).hexdigest()

    @property
    def manifest_sha256(self) -> str:
        return hashlib.sha256(_canonical(self.manifest).encode()).hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _seal(messages: Sequence[dict[str, str]], destinations: Sequence[str]) -> str:
    key = hashlib.sha256(("egress-gate:" + settings.SECRET_KEY).encode()).digest()
    payload = _canonical({"messages": list(messages), "destinations": list(destinations)})
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def verify_sealed(gated: GatedPrompt, destination_key: str) -> None:
    """Raise PermissionError unless the gate sealed exactly these messages for this destination."""
    expected = _seal(gated.messages, gated.destinations)
    if not isinstance(gated, GatedPrompt) or not hmac.compare_digest(expected, gated.seal):
        raise PermissionError(ERROR_NOT_SEALED)
    if destination_key not in gated.destinations:
        raise PermissionError(ERROR_WRONG_DESTINATION.format(destination=destination_key))


# ---- policy -------------------------------------------------------------------------------------------
def user_role_names(user: Any) -> list[str]:
    return memberships.user_role_names(user)


def preview_required(user: Any) -> bool:
    """Whether this user's roles want to see what leaves before it is sent (fails closed to True)."""
    from governance.selectors import policy_in_force

    try:
        from governance.policy import effective_policy

        return effective_policy(policy_in_force().document, user_role_names(user)).preview_before_send
    except Exception:  # noqa: BLE001 - if the policy cannot be read, showing a preview is the safe side
        logger.exception("preview_required: policy lookup failed")
        return True


@dataclass
class _PartPlan:
    part: PromptPart
    findings: Counter[str] = field(default_factory=Counter)
    layers: Counter[str] = field(default_factory=Counter)
    decision: str = "sent"  # sent | withheld
    reason: str = ""
    blocked_classes: list[str] = field(default_factory=list)
    forces_local: bool = False
    spans: list[Any] = field(default_factory=list)
    # what happened to this part's values: {"pseudonymized": {class: count}, "redacted": ..., "abstracted": ...}
    applied: dict[str, Counter[str]] = field(default_factory=lambda: {name: Counter() for name in APPLIED})


def detection_context(parts: Sequence[PromptPart]) -> set[str]:
    """Who the prompt is about: the customers whose record or memories are among its parts."""
    return {
        f"customer:{part.source['customer_id']}" for part in parts if part.source.get("customer_id") not in (None, "")
    }


def _classify(parts: Sequence[PromptPart], policy: Any) -> list[_PartPlan]:
    from governance.detection import detect_parts

    plans = []
    all_spans = detect_parts([part.text for part in parts], context=detection_context(parts))
    for part, spans in zip(parts, all_spans, strict=True):
        plan = _PartPlan(part=part)
        plan.spans = spans
        for finding in plan.spans:
            plan.findings[finding.data_class] += 1
            plan.layers[finding.layer] += 1
        if part.kind == "chunk" or "classification" in part.source:
            label_action = policy.label_action(part.source.get("classification"))
            if label_action == dc.LOCAL:
                plan.forces_local = True
                plan.reason = f"knowledge labelled {part.source.get('classification') or 'unlabelled'}: local only"
            elif label_action == dc.WITHHOLD:
                plan.decision, plan.reason = (
                    "withheld",
                    (f"knowledge labelled {part.source.get('classification')} may not go to cloud models"),
                )
        if part.kind == "memory" and str(part.source.get("scope", "")).lower() in policy.withheld_memory_scopes:
            plan.decision, plan.reason = "withheld", f"memory scope {part.source.get('scope')} stays local"
        if part.kind == "customer" and str(part.source.get("field", "")).lower() in policy.withheld_customer_fields:
            plan.decision, plan.reason = "withheld", f"customer field {part.source.get('field')} stays local"
        _apply_passage_flags(plan, policy)
        plan.blocked_classes = sorted(c for c in plan.findings if policy.classes.get(c, dc.BLOCK) == dc.BLOCK)
        if plan.blocked_classes and plan.decision == "sent" and part.kind in WITHHOLDABLE_KINDS:
            plan.decision = "withheld"
            plan.reason = f"contains {', '.join(plan.blocked_classes)}, blocked by policy"
        plans.append(plan)
    return plans


INJECTION_WRAPPED = "flagged as a possible prompt injection: sent wrapped as quoted, untrusted material"
INJECTION_WITHHELD = "flagged as a possible prompt injection: withheld by policy"
FLAGGED_WITHHELD = "flagged as more sensitive than its knowledge base: withheld until an officer reviews it"


def _apply_passage_flags(plan: _PartPlan, policy: Any) -> None:
    """Marks the assistant's build stage put on passages the local models flagged (portal/ml)."""
    source = plan.part.source
    if source.get("sensitivity_flag") == "unreviewed" and policy.withhold_flagged_passages and plan.decision == "sent":
        plan.decision, plan.reason = "withheld", FLAGGED_WITHHELD
    if source.get("injection"):
        if policy.injection_action == "withhold" and plan.decision == "sent":
            plan.decision, plan.reason = "withheld", INJECTION_WITHHELD
        elif plan.decision == "sent" and not plan.reason:
            plan.reason = INJECTION_WRAPPED


def _transform(plan: _PartPlan, policy: Any, vault: Any, done: dict[str, Counter[str]]) -> str:
    from governance.abstraction import abstract

    text = plan.part.text
    pieces = []
    position = 0
    for finding in plan.spans:
        action = policy.classes.get(finding.data_class, dc.BLOCK)
        if action == dc.ALLOW:
            continue
        value = text[finding.start : finding.end]
        pieces.append(text[position : finding.start])
        if action == dc.PSEUDONYMIZE:
            pieces.append(vault.placeholder(finding.data_class, value))
            applied = "pseudonymized"
        elif action == dc.ABSTRACT:
            pieces.append(abstract(finding.data_class, value))
            applied = "abstracted"
        else:  # redact (block never reaches here: such parts are withheld or the prompt stops)
            pieces.append(f"[{finding.data_class} redacted]")
            applied = "redacted"
        done[applied][finding.data_class] += 1
        plan.applied[applied][finding.data_class] += 1
        position = finding.end
    pieces.append(text[position:])
    return "".join(pieces)


# Only identifiers and labels of a part's source go into the manifest: a title or a customer name there
# would carry the very values the gate keeps from leaving into stored answers and audit hashes.
MANIFEST_SOURCE_KEYS = frozenset(
    {"classification", "scope", "field", "citation", "kind", "injection", "sensitivity_flag"}
)


def _manifest_source(source: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: value
        for key, value in source.items()
        if (key in MANIFEST_SOURCE_KEYS or key.endswith("_id"))
        and (isinstance(value, bool | int | float) or (isinstance(value, str) and len(value) <= 100))
    }


def _load_policy(*, role_names: Sequence[str], policy_document: dict[str, Any] | None) -> tuple[Any, Any]:
    from governance.policy import effective_policy, normalise_document
    from governance.selectors import policy_in_force

    try:
        if policy_document is not None:  # a draft being tried out
            return None, effective_policy(normalise_document(policy_document), role_names)
        version = policy_in_force()
        return version, effective_policy(version.document, role_names)
    except Exception:
        logger.exception("egress gate: policy lookup failed")
        raise EgressBlocked(ERROR_POLICY_UNAVAILABLE) from None


@dataclass(frozen=True)
class _Clearance:
    """Which of the candidate destinations this prompt may go to, and why the others may not."""

    cleared: list[str]
    refused: list[dict[str, str]]
    only_local: bool  # only the local model is cleared: nothing leaves the server


@dataclass(frozen=True)
class _Pseudonymized:
    """Each part's text as it may leave (withheld parts empty), and the vault entries behind its placeholders."""

    texts: list[str]
    entries: dict[str, str]
    done: dict[str, Counter[str]]  # what was done to values, per class, over all parts


@dataclass(frozen=True)
class _PolicyResult:
    """What `_apply_policy` decided: the messages that may be sent, the manifest, the cleared destinations and
    the vault entries the restorer needs."""

    messages: list[dict[str, str]]
    manifest: dict[str, Any]
    cleared: list[str]
    entries: dict[str, str]


def _apply_policy(
    *,
    user: Any,
    conversation_key: str,
    destinations: Sequence[Destination],
    parts: Sequence[PromptPart],
    roles: Sequence[str] | None = None,
    policy_document: dict[str, Any] | None = None,
    persist_vault: bool = True,
    sensitive: bool = False,
) -> _PolicyResult:
    role_names = list(roles) if roles is not None else user_role_names(user)
    version, policy = _load_policy(role_names=role_names, policy_document=policy_document)
    if sensitive:
        policy = policy.at_least(dc.ABSTRACT, dc.personal_classes())
    try:
        plans = _classify(parts, policy)
    except EgressBlocked:
        raise
    except Exception as error:
        logger.error("egress gate: detection failed (%s)", type(error).__name__)
        raise EgressBlocked(ERROR_DETECTION_FAILED) from None
    clearance = _destinations(plans, policy, destinations)
    pseudonymized = _pseudonymize(
        plans, policy, clearance, conversation_key=conversation_key, persist_vault=persist_vault
    )
    result = _manifest(plans, policy, clearance, pseudonymized, version=version, sensitive=sensitive)
    if not clearance.cleared:
        reasons = "; ".join(dict.fromkeys(row["reason"] for row in clearance.refused)) or "no destination was offered"
        raise EgressBlocked(ERROR_NO_DESTINATION.format(reasons=reasons))
    return result


def _stop_reasons(plans: Sequence[_PartPlan]) -> list[str]:
    """Why no cloud model may have this prompt at all: blocked content where it cannot be left out, or
    local-only knowledge."""
    reasons = []
    for plan in plans:
        if plan.blocked_classes and plan.part.kind not in WITHHOLDABLE_KINDS and plan.decision == "sent":
            where = dc.PART_KIND_LABELS.get(plan.part.kind, plan.part.kind).lower()
            reasons.append(ERROR_BLOCKED_CONTENT.format(where=where, classes=", ".join(plan.blocked_classes)))
    if any(plan.forces_local and plan.decision == "sent" for plan in plans):
        reasons.append(ERROR_LOCAL_CONTENT)
    return reasons


def _destinations(plans: Sequence[_PartPlan], policy: Any, destinations: Sequence[Destination]) -> _Clearance:
    """The local model is always cleared; a cloud one when the prompt may leave and its provider is allowed."""
    stop_reasons = _stop_reasons(plans)
    cleared: list[str] = []
    refused: list[dict[str, str]] = []
    for destination in destinations:
        if destination.is_local:
            cleared.append(destination.key)
            continue
        if stop_reasons:
            refused.append({"destination": destination.key, "reason": "; ".join(stop_reasons)})
            continue
        why = policy.provider_refusal(
            provider=destination.provider,
            zero_data_retention=destination.zero_data_retention,
            region=destination.region,
        )
        if why:
            refused.append({"destination": destination.key, "reason": why})
        else:
            cleared.append(destination.key)
    local_keys = {d.key for d in destinations if d.is_local}
    only_local = bool(cleared) and all(key in local_keys for key in cleared)
    return _Clearance(cleared, refused, only_local)


def _pseudonymize(
    plans: Sequence[_PartPlan], policy: Any, clearance: _Clearance, *, conversation_key: str, persist_vault: bool
) -> _Pseudonymized:
    """Apply each class's action to the parts that are sent, with placeholders from the conversation's vault
    (saved unless simulated). Only the local model cleared: it gets every part unchanged."""
    from governance.vault import Vault, vault_open, vault_save

    done: dict[str, Counter[str]] = {name: Counter() for name in APPLIED}
    if not clearance.cleared or clearance.only_local:
        return _Pseudonymized([plan.part.text for plan in plans], {}, done)
    try:
        if persist_vault and not _needs_placeholders(plans, policy):
            # No value of this prompt gets a placeholder, so no number is handed out and the row lock (a
            # transaction, an insert and a locking read) is not needed: the vault is only read, for the
            # restorer's earlier placeholders.
            vault = vault_open(conversation_key=conversation_key, lock=False)
            texts = [_transform(plan, policy, vault, done) if plan.decision == "sent" else "" for plan in plans]
            if not vault.changed:
                return _Pseudonymized(texts, dict(vault.entries), done)
            raise RuntimeError("a placeholder was handed out without the vault's lock")
        with transaction.atomic():
            vault = vault_open(conversation_key=conversation_key) if persist_vault else Vault(conversation_key)
            texts = [_transform(plan, policy, vault, done) if plan.decision == "sent" else "" for plan in plans]
            if persist_vault:
                vault_save(vault=vault)
            entries = dict(vault.entries)
    except Exception as error:
        logger.error("egress gate: vault failed (%s)", type(error).__name__)
        raise EgressBlocked(ERROR_VAULT_FAILED) from None
    return _Pseudonymized(texts, entries, done)


def _needs_placeholders(plans: Sequence[_PartPlan], policy: Any) -> bool:
    """Whether a part that is sent has a value its class pseudonymizes (what `_transform` gives a placeholder)."""
    return any(
        policy.classes.get(finding.data_class, dc.BLOCK) == dc.PSEUDONYMIZE
        for plan in plans
        if plan.decision == "sent"
        for finding in plan.spans
    )


def _manifest(
    plans: Sequence[_PartPlan],
    policy: Any,
    clearance: _Clearance,
    pseudonymized: _Pseudonymized,
    *,
    version: Any,
    sensitive: bool,
) -> _PolicyResult:
    """The messages that are sent, and the manifest of what was found, sent, withheld and done, and why
    (counts and placeholders, never a value)."""
    from governance.detection import ner_status

    cleared, only_local, done = clearance.cleared, clearance.only_local, pseudonymized.done
    messages: list[dict[str, str]] = []
    part_rows = []
    used_placeholders: set[str] = set()
    for plan, text in zip(plans, pseudonymized.texts, strict=True):
        sent = bool(cleared) and (only_local or plan.decision == "sent")
        if sent and text:
            messages.append({"role": plan.part.role, "content": text})
            used_placeholders.update(p for p in pseudonymized.entries if p in text)
        part_rows.append(
            {
                "kind": plan.part.kind,
                "source": _manifest_source(plan.part.source),
                "decision": ("sent" if sent else "withheld"),
                "reason": plan.reason or ("local model only: nothing leaves the server" if only_local and sent else ""),
                "chars": len(plan.part.text),
                "findings": dict(sorted(plan.findings.items())),
                **{name: dict(sorted(plan.applied[name].items())) for name in APPLIED},
            }
        )
    findings_total: Counter[str] = Counter()
    layers_total: Counter[str] = Counter()
    for plan in plans:
        findings_total.update(plan.findings)
        layers_total.update(plan.layers)
    manifest = {
        "gate": GATE_NAME,
        "policy_version": version.pk if version is not None else None,
        "policy_version_number": version.number if version is not None else None,
        "policy_source": "published" if version is not None else "draft",
        "roles": list(policy.roles),
        "parts": part_rows,
        "findings": dict(sorted(findings_total.items())),
        "detection_layers": {**dict(sorted(layers_total.items())), "ner": ner_status()},
        "actions": {c: policy.classes[c] for c in sorted(findings_total)},
        "sensitive": sensitive,
        "pseudonymized": dict(sorted(done["pseudonymized"].items())),
        "abstracted": dict(sorted(done["abstracted"].items())),
        "redacted": dict(sorted(done["redacted"].items())),
        "placeholders": sorted(used_placeholders),
        "withheld": sum(1 for row in part_rows if row["decision"] == "withheld"),
        "flagged_passages": {
            "injection_wrapped": sum(1 for row in part_rows if row["reason"] == INJECTION_WRAPPED),
            "injection_withheld": sum(1 for row in part_rows if row["reason"] == INJECTION_WITHHELD),
            "sensitivity_withheld": sum(1 for row in part_rows if row["reason"] == FLAGGED_WITHHELD),
        },
        "destinations": cleared,
        "destinations_refused": clearance.refused,
        "local_only": only_local,
        "preview_before_send": policy.preview_before_send,
    }
    return _PolicyResult(messages, manifest, list(cleared), dict(pseudonymized.entries))


def egress_gate(
    *,
    user: Any,
    conversation_key: str,
    destinations: Sequence[Destination],
    parts: Sequence[PromptPart],
    roles: Sequence[str] | None = None,
    policy_document: dict[str, Any] | None = None,
    persist_vault: bool = True,
    subject: tuple[str, str | int] | None = None,
    sensitive: bool = False,
) -> GatedPrompt:
    """Classify, apply the policy, pseudonymize, seal. Raises EgressBlocked when nothing may be sent.

    The gate audits its own decision (`governance.egress_decided`, or `governance.egress_blocked`) for every
    caller; `subject` is the (object type, id) the event is about, e.g. the assistant's question, by
    default the conversation key. `roles`, `policy_document` and `persist_vault=False` are for the
    simulator: the same code, another role or a draft policy, and a throwaway vault, and no event.
    `sensitive`: every personal class is at least abstracted, whatever the policy allows (a profile marked
    sensitive: "for sensitive operations, only anonymized or abstracted data").
    """
    about = subject or ("conversation", conversation_key[:100])
    try:
        # inside the try: a refusal for a malformed prompt is audited like every other refusal
        if any(part.kind not in PART_KINDS for part in parts):
            raise EgressBlocked(ERROR_UNKNOWN_PART)
        result = _apply_policy(
            user=user,
            conversation_key=conversation_key,
            destinations=destinations,
            parts=parts,
            roles=roles,
            policy_document=policy_document,
            persist_vault=persist_vault,
            sensitive=sensitive,
        )
    except EgressBlocked as blocked:
        _audit_blocked(user=user, subject=about, reason=str(blocked), simulated=not persist_vault)
        raise
    except Exception as error:  # anything unforeseen: fail closed, without the details (they may hold values)
        logger.error("egress gate failed (%s)", type(error).__name__)
        _audit_blocked(user=user, subject=about, reason="internal error", simulated=False)
        raise EgressBlocked(ERROR_DETECTION_FAILED) from None
    gated = GatedPrompt(
        messages=tuple(result.messages),
        manifest=result.manifest,
        destinations=tuple(result.cleared),
        seal=_seal(result.messages, result.cleared),
        conversation_key=conversation_key,
    )
    object.__setattr__(gated, "_vault_entries", result.entries)
    if persist_vault:
        _audit_decided(user=user, subject=about, gated=gated)
    return gated


def _audit_decided(*, user: Any, subject: tuple[str, str | int], gated: GatedPrompt) -> None:
    """What was sent, withheld or pseudonymized, under which policy version: only hashes and counts (the
    manifest itself, kept by the caller, holds no raw values either)."""
    from audit.services import audit

    decisions: dict[str, int] = {}
    for part in gated.manifest.get("parts", []):
        decision = str(part.get("decision", ""))
        decisions[decision] = decisions.get(decision, 0) + 1
    audit(
        actor=user if getattr(user, "is_authenticated", False) else None,
        action="governance.egress_decided",
        object_type=subject[0],
        object_id=subject[1],
        details={
            "policy_version": gated.manifest.get("policy_version"),
            "prompt_sha256": gated.prompt_sha256,
            "manifest_sha256": gated.manifest_sha256,
            "destinations": list(gated.destinations),
            "parts_by_decision": decisions,
            "sensitive": bool(gated.manifest.get("sensitive", False)),
        },
    )


def _audit_blocked(*, user: Any, subject: tuple[str, str | int], reason: str, simulated: bool) -> None:
    if simulated:
        return
    from audit.models import Outcome
    from audit.services import audit

    try:
        with transaction.atomic():
            audit(
                actor=user if getattr(user, "is_authenticated", False) else None,
                action="governance.egress_blocked",
                object_type=subject[0],
                object_id=subject[1],
                outcome=Outcome.DENIED,
                details={"reason": reason},
            )
    except Exception as error:  # noqa: BLE001 - the block itself must still reach the user
        logger.error("could not audit a blocked prompt (%s)", type(error).__name__)
