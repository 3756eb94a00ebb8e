from __future__ import annotations

from typing import Any

from django import forms

from governance import classes as dc
from governance.gate import Destination

REASON_HELP = "Why this change? Kept with the version and in the audit trail."


def _slug(role: str) -> str:
    return role.lower().replace(" ", "_")


class PolicyForm(forms.Form):
    """The whole policy matrix: one select per role x data class, plus each role's other rules."""

    reason = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text=REASON_HELP)

    def __init__(self, *args: Any, roles: list[str], document: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.roles = roles
        for role in roles:
            rules = document["roles"].get(role) or document["roles"][next(iter(document["roles"]))]
            slug = _slug(role)
            for data_class in dc.DATA_CLASSES:
                self.fields[f"{slug}__class__{data_class}"] = forms.ChoiceField(
                    choices=[(a, a) for a in dc.ACTIONS],
                    initial=rules["classes"][data_class],
                    label=f"{role}: {data_class}",
                )
            for label in dc.LABELS:
                choices = [(dc.LOCAL, dc.LOCAL)] if label == dc.LOCAL_ONLY else [(a, a) for a in dc.LABEL_ACTIONS]
                self.fields[f"{slug}__label__{label}"] = forms.ChoiceField(
                    choices=choices, initial=rules["labels"][label], label=f"{role}: knowledge labelled {label}"
                )
            providers = rules["providers"]
            self.fields[f"{slug}__preview"] = forms.BooleanField(
                required=False, initial=rules["preview_before_send"], label=f"{role}: preview before send"
            )
            self.fields[f"{slug}__zdr"] = forms.BooleanField(
                required=False,
                initial=providers["require_zero_data_retention"],
                label=f"{role}: only providers with zero data retention",
            )
            self.fields[f"{slug}__regions"] = forms.CharField(
                required=False,
                initial=", ".join(providers["allowed_regions"]),
                label=f"{role}: allowed regions",
                help_text="Comma-separated, e.g. eu. Empty: any region.",
            )
            self.fields[f"{slug}__blocked_providers"] = forms.CharField(
                required=False,
                initial=", ".join(providers["blocked_providers"]),
                label=f"{role}: blocked providers",
                help_text="Comma-separated provider names, e.g. openai.",
            )
            self.fields[f"{slug}__memory_scopes"] = forms.CharField(
                required=False,
                initial=", ".join(rules["withheld_memory_scopes"]),
                label=f"{role}: memory scopes kept local",
            )
            self.fields[f"{slug}__customer_fields"] = forms.CharField(
                required=False,
                initial=", ".join(rules["withheld_customer_fields"]),
                label=f"{role}: customer fields kept local",
            )
            # passages flagged by the local models (portal/ml)
            self.fields[f"{slug}__flagged_passages"] = forms.BooleanField(
                required=False,
                initial=rules.get("withhold_flagged_passages", False),
                label=f"{role}: withhold passages flagged as more sensitive until an officer reviews them",
            )
            self.fields[f"{slug}__injection"] = forms.ChoiceField(
                required=False,  # not posted: the default, wrap
                choices=[("wrap", "send wrapped as untrusted quoted material"), ("withhold", "withhold")],
                initial=rules.get("injection_action", "wrap"),
                label=f"{role}: passages flagged as possible prompt injections",
            )

    def matrix(self) -> list[dict[str, Any]]:
        """Rows for the template: per data class, the bound field of each role."""
        return [
            {
                "data_class": data_class,
                "description": dc.DATA_CLASS_DESCRIPTIONS[data_class],
                "cells": [self[f"{_slug(role)}__class__{data_class}"] for role in self.roles],
            }
            for data_class in dc.DATA_CLASSES
        ]

    def label_rows(self) -> list[dict[str, Any]]:
        return [
            {"label": label, "cells": [self[f"{_slug(role)}__label__{label}"] for role in self.roles]}
            for label in dc.LABELS
        ]

    def role_settings(self) -> list[dict[str, Any]]:
        names = (
            "preview",
            "zdr",
            "regions",
            "blocked_providers",
            "memory_scopes",
            "customer_fields",
            "flagged_passages",
            "injection",
        )
        return [{"role": role, "fields": [self[f"{_slug(role)}__{name}"] for name in names]} for role in self.roles]

    def to_document(self) -> dict[str, Any]:
        data = self.cleaned_data
        roles = {}
        for role in self.roles:
            slug = _slug(role)
            roles[role] = {
                "classes": {c: data[f"{slug}__class__{c}"] for c in dc.DATA_CLASSES},
                "labels": {label: data[f"{slug}__label__{label}"] for label in dc.LABELS},
                "preview_before_send": data[f"{slug}__preview"],
                "providers": {
                    "require_zero_data_retention": data[f"{slug}__zdr"],
                    "allowed_regions": data[f"{slug}__regions"],
                    "blocked_providers": data[f"{slug}__blocked_providers"],
                },
                "withheld_memory_scopes": data[f"{slug}__memory_scopes"],
                "withheld_customer_fields": data[f"{slug}__customer_fields"],
                "withhold_flagged_passages": data[f"{slug}__flagged_passages"],
                "injection_action": data[f"{slug}__injection"] or "wrap",
            }
        return {"roles": roles}


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), help_text=REASON_HELP)


class TermListForm(forms.Form):
    name = forms.CharField(max_length=100)
    data_class = forms.ChoiceField(choices=[(c, c) for c in dc.DATA_CLASSES])
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    terms = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 8}), help_text="One term per line (names, codes, ...)."
    )


CUSTOM_DESTINATION = "custom"
LOCAL_DESTINATION = "offline"


def _destination_label(destination: Destination) -> str:
    flags = [destination.provider]
    if destination.region:
        flags.append(destination.region)
    if destination.zero_data_retention:
        flags.append("zero data retention")
    if destination.is_local:
        flags.append("local")
    return f"{destination.key} ({', '.join(flags)})"


class SimulatorForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), max_length=50_000, label="Text to send")
    kind = forms.ChoiceField(
        choices=[(k, v) for k, v in dc.PART_KIND_LABELS.items()], initial="question", label="Treat the text as"
    )
    classification = forms.ChoiceField(
        choices=[("", "(no label)")] + [(label, label) for label in dc.LABELS],
        required=False,
        label="Knowledge-base label",
    )
    role = forms.ChoiceField(label="Role")
    destination = forms.ChoiceField(label="Destination")
    provider = forms.CharField(required=False, initial="openai", label="Custom destination: provider")
    region = forms.CharField(required=False, label="Custom destination: region")
    zero_data_retention = forms.BooleanField(required=False, label="Custom destination: zero data retention")
    policy = forms.ChoiceField(
        choices=[("published", "Published policy"), ("draft", "Draft policy")], initial="published", label="Policy"
    )
    sensitive = forms.BooleanField(
        required=False,
        label="Sensitive operation (like a profile marked sensitive: every personal class at least abstracted)",
    )

    def __init__(self, *args: Any, roles: list[str], destinations: list[Destination], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.destination_map = {d.key: d for d in destinations}
        role_field = self.fields["role"]
        destination_field = self.fields["destination"]
        assert isinstance(role_field, forms.ChoiceField) and isinstance(destination_field, forms.ChoiceField)
        role_field.choices = [(r, r) for r in roles]
        destination_field.choices = [(d.key, _destination_label(d)) for d in destinations] + [
            (CUSTOM_DESTINATION, "Custom (below)")
        ]

    def chosen_destination(self) -> Destination:
        key = self.cleaned_data["destination"]
        if key != CUSTOM_DESTINATION:
            return self.destination_map[key]
        return Destination(
            key="simulated-cloud",
            provider=self.cleaned_data["provider"].strip() or "unknown",
            zero_data_retention=self.cleaned_data["zero_data_retention"],
            region=self.cleaned_data["region"].strip(),
        )
