from __future__ import annotations

from typing import Any

from django import forms

from portal.retention.kinds import KINDS
from portal.retention.models import HoldSubject


class PolicyForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)

    def __init__(self, *args: Any, periods: dict[str, int | None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for kind in KINDS:
            self.fields[kind.key] = forms.IntegerField(
                required=False, min_value=0, label=kind.label,
                initial=(periods or {}).get(kind.key),
                help_text=f"days after {kind.age}; at least {kind.minimum_days}; empty: keep for ever",
            )  # fmt: skip
        self.order_fields([kind.key for kind in KINDS] + ["reason"])

    def periods(self) -> dict[str, int | None]:
        return {kind.key: self.cleaned_data.get(kind.key) for kind in KINDS}


class HoldForm(forms.Form):
    subject = forms.ChoiceField(choices=HoldSubject.choices, label="On")
    subject_id = forms.IntegerField(min_value=1, label="Number (id)")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)


class LiftForm(forms.Form):
    reason = forms.CharField(max_length=2000, label="Reason for lifting")
