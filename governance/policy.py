"""Policy documents: what each role may send, and how several roles combine (the strictest wins).

A policy document is plain JSON, stored whole in each immutable PolicyVersion:

    {"roles": {"Staff": {
        "classes": {"PERSON": "pseudonymize", "CREDENTIAL": "block", ...},  # allow|pseudonymize|abstract|redact|block
        "labels": {"public": "send", "internal": "send", "confidential": "withhold", "local_only": "local"},
        "preview_before_send": false,
        "providers": {"require_zero_data_retention": false, "allowed_regions": [], "blocked_providers": []},
        "withheld_memory_scopes": [], "withheld_customer_fields": [],
        "withhold_flagged_passages": false, "injection_action": "wrap"}}}

The last two concern passages the local models flagged (portal/ml): one more sensitive than its knowledge
base and not reviewed yet is withheld from cloud prompts when `withhold_flagged_passages` is on; a possible
prompt injection is sent wrapped as quoted untrusted material (`wrap`) or withheld (`withhold`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from django.core.exceptions import ValidationError

from governance import classes as dc
from governance.roles import ROLE_ORDER

ERROR_UNKNOWN_ACTION = "Unknown action {action!r} for {data_class} in role {role}."
ERROR_UNKNOWN_LABEL_ACTION = "Unknown label rule {action!r} for {label} in role {role}."
ERROR_NOT_A_POLICY = "A policy must be a JSON object with a 'roles' object."
ERROR_UNKNOWN_INJECTION_ACTION = "Unknown rule {action!r} for flagged prompt injections in role {role}."
INJECTION_WRAP = "wrap"
INJECTION_WITHHOLD = "withhold"
INJECTION_ACTIONS = (INJECTION_WRAP, INJECTION_WITHHOLD)  # least to most restrictive

BLOCKED_BY_DEFAULT = (dc.CREDENTIAL, dc.NATIONAL_ID, dc.PAYMENT_CARD, dc.BANK_ACCOUNT)
# Health/financial findings are single words ("diabetes", "salary"); once people are pseudonymized they
# identify no one, and hiding them would make ordinary benefits questions unanswerable. Dates in prose
# (a meeting, a deadline) are the same: a date of birth is its own class and pseudonymized. Every class a
# customer record feeds (PERSON, EMAIL, PHONE, POSTAL_ADDRESS, CUSTOMER_FIELD, ACCOUNT_NUMBER) is at least
# pseudonymized, and IBANs are blocked (BANK_ACCOUNT).
ALLOWED_BY_DEFAULT = (dc.HEALTH, dc.FINANCIAL, dc.DATE)


def default_role_rules() -> dict[str, Any]:
    classes = {}
    for data_class in dc.DATA_CLASSES:
        if data_class in BLOCKED_BY_DEFAULT:
            classes[data_class] = dc.BLOCK
        elif data_class in ALLOWED_BY_DEFAULT:
            classes[data_class] = dc.ALLOW
        else:
            classes[data_class] = dc.PSEUDONYMIZE
    return {
        "classes": classes,
        "labels": {dc.PUBLIC: dc.SEND, dc.INTERNAL: dc.SEND, dc.CONFIDENTIAL: dc.WITHHOLD, dc.LOCAL_ONLY: dc.LOCAL},
        "preview_before_send": False,
        "providers": {"require_zero_data_retention": False, "allowed_regions": [], "blocked_providers": []},
        "withheld_memory_scopes": [],
        "withheld_customer_fields": [],
        "withhold_flagged_passages": False,
        "injection_action": INJECTION_WRAP,
    }


def default_document(role_names: Iterable[str] = ROLE_ORDER) -> dict[str, Any]:
    return {"roles": {name: default_role_rules() for name in role_names}}


def _string_list(value: Any) -> list[str]:
    if isinstance(value, str):
        value = value.split(",")
    return sorted({str(item).strip().lower() for item in value or [] if str(item).strip()})


def normalise_document(document: Any, role_names: Iterable[str] = ()) -> dict[str, Any]:
    """A complete, validated copy: missing roles/classes get the defaults, bad values raise ValidationError."""
    if not isinstance(document, dict) or not isinstance(document.get("roles", {}), dict):
        raise ValidationError(ERROR_NOT_A_POLICY)
    roles_in = document.get("roles", {})
    result: dict[str, Any] = {"roles": {}}
    for role in [*roles_in, *[name for name in role_names if name not in roles_in]]:
        given = roles_in.get(role) or {}
        rules = default_role_rules()
        for data_class in dc.DATA_CLASSES:
            action = (given.get("classes") or {}).get(data_class, rules["classes"][data_class])
            if action not in dc.ACTIONS:
                raise ValidationError(ERROR_UNKNOWN_ACTION.format(action=action, data_class=data_class, role=role))
            rules["classes"][data_class] = action
        for label in dc.LABELS:
            action = (given.get("labels") or {}).get(label, rules["labels"][label])
            if action not in dc.LABEL_ACTIONS:
                raise ValidationError(ERROR_UNKNOWN_LABEL_ACTION.format(action=action, label=label, role=role))
            rules["labels"][label] = action
        rules["labels"][dc.LOCAL_ONLY] = dc.LOCAL  # not negotiable: local-only content never leaves
        rules["preview_before_send"] = bool(given.get("preview_before_send", False))
        providers = given.get("providers") or {}
        rules["providers"] = {
            "require_zero_data_retention": bool(providers.get("require_zero_data_retention", False)),
            "allowed_regions": _string_list(providers.get("allowed_regions")),
            "blocked_providers": _string_list(providers.get("blocked_providers")),
        }
        rules["withheld_memory_scopes"] = _string_list(given.get("withheld_memory_scopes"))
        rules["withheld_customer_fields"] = _string_list(given.get("withheld_customer_fields"))
        rules["withhold_flagged_passages"] = bool(given.get("withhold_flagged_passages", False))
        injection = given.get("injection_action", INJECTION_WRAP) or INJECTION_WRAP
        if injection not in INJECTION_ACTIONS:
            raise ValidationError(ERROR_UNKNOWN_INJECTION_ACTION.format(action=injection, role=role))
        rules["injection_action"] = injection
        result["roles"][role] = rules
    return result


@dataclass(frozen=True)
class EffectivePolicy:
    """The rules that apply to one person: the strictest combination of their roles."""

    roles: tuple[str, ...]
    classes: dict[str, str]
    labels: dict[str, str]
    preview_before_send: bool
    require_zero_data_retention: bool
    allowed_regions: frozenset[str] | None  # None: any region
    blocked_providers: frozenset[str]
    withheld_memory_scopes: frozenset[str] = field(default_factory=frozenset)
    withheld_customer_fields: frozenset[str] = field(default_factory=frozenset)
    withhold_flagged_passages: bool = False
    injection_action: str = INJECTION_WRAP

    def at_least(self, action: str, data_classes: Iterable[str]) -> EffectivePolicy:
        """The same rules with `action` as the floor for these classes (stricter rules stay)."""
        floor = frozenset(data_classes)
        classes = {c: dc.most_restrictive([a, action]) if c in floor else a for c, a in self.classes.items()}
        return replace(self, classes=classes)

    def label_action(self, label: str | None) -> str:
        if not label:
            return self.labels.get(dc.INTERNAL, dc.LOCAL)
        return self.labels.get(label, dc.LOCAL)  # an unknown label is treated as local-only: fail closed

    def provider_refusal(self, *, provider: str, zero_data_retention: bool, region: str) -> str:
        """Why a cloud destination may not receive this prompt ("" if it may)."""
        if provider.lower() in self.blocked_providers:
            return f"provider {provider} is blocked for this role"
        if self.require_zero_data_retention and not zero_data_retention:
            return "this role requires zero data retention"
        if self.allowed_regions is not None and region.lower() not in self.allowed_regions:
            allowed = ", ".join(sorted(self.allowed_regions)) or "none"
            return f"region {region or 'unknown'} is not allowed (allowed: {allowed})"
        return ""


def effective_policy(document: dict[str, Any], role_names: Sequence[str]) -> EffectivePolicy:
    """Combine the rules of several roles; someone with no role in the policy gets every role's strictest."""
    roles = document["roles"]
    chosen = [name for name in role_names if name in roles] or list(roles)
    if not chosen:
        rules = [default_role_rules()]
        for data_class in dc.DATA_CLASSES:
            rules[0]["classes"][data_class] = dc.BLOCK
    else:
        rules = [roles[name] for name in chosen]
    regions: frozenset[str] | None = None
    for rule in rules:
        listed = rule["providers"]["allowed_regions"]
        if listed:
            regions = frozenset(listed) if regions is None else regions & frozenset(listed)
    return EffectivePolicy(
        roles=tuple(chosen),
        classes={c: dc.most_restrictive([r["classes"][c] for r in rules]) for c in dc.DATA_CLASSES},
        labels={
            label: dc.most_restrictive([r["labels"][label] for r in rules], dc.LABEL_ACTIONS) for label in dc.LABELS
        },
        preview_before_send=any(r["preview_before_send"] for r in rules),
        require_zero_data_retention=any(r["providers"]["require_zero_data_retention"] for r in rules),
        allowed_regions=regions,
        blocked_providers=frozenset(p for r in rules for p in r["providers"]["blocked_providers"]),
        withheld_memory_scopes=frozenset(s for r in rules for s in r["withheld_memory_scopes"]),
        withheld_customer_fields=frozenset(s for r in rules for s in r["withheld_customer_fields"]),
        withhold_flagged_passages=any(r.get("withhold_flagged_passages", False) for r in rules),
        injection_action=max((r.get("injection_action", INJECTION_WRAP) for r in rules), key=INJECTION_ACTIONS.index),
    )


# ---- readable differences ---------------------------------------------------------------------------
def _flatten(document: dict[str, Any]) -> dict[str, str]:
    flat: dict[str, str] = {}
    for role, rules in document.get("roles", {}).items():
        for data_class, action in rules["classes"].items():
            flat[f"{role} · {data_class}"] = action
        for label, action in rules["labels"].items():
            flat[f"{role} · knowledge label {label}"] = action
        flat[f"{role} · preview before send"] = "on" if rules["preview_before_send"] else "off"
        providers = rules["providers"]
        flat[f"{role} · zero data retention required"] = "yes" if providers["require_zero_data_retention"] else "no"
        flat[f"{role} · allowed regions"] = ", ".join(providers["allowed_regions"]) or "any"
        flat[f"{role} · blocked providers"] = ", ".join(providers["blocked_providers"]) or "none"
        flat[f"{role} · memory scopes withheld"] = ", ".join(rules["withheld_memory_scopes"]) or "none"
        flat[f"{role} · customer fields withheld"] = ", ".join(rules["withheld_customer_fields"]) or "none"
        flat[f"{role} · flagged passages withheld until reviewed"] = (
            "yes" if rules.get("withhold_flagged_passages") else "no"
        )
        flat[f"{role} · flagged prompt injections"] = rules.get("injection_action", INJECTION_WRAP)
    return flat


def document_diff(before: dict[str, Any] | None, after: dict[str, Any]) -> list[dict[str, str]]:
    """What changed, one readable row per rule: {"rule", "before", "after"}."""
    old = _flatten(before or {"roles": {}})
    new = _flatten(after)
    rows = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            rows.append({"rule": key, "before": old.get(key, "(none)"), "after": new.get(key, "(removed)")})
    return rows
