from __future__ import annotations

from typing import Any

from django import forms

from audit.filters import AuditFilter
from audit.models import ExportFormat, Outcome


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs, format="%Y-%m-%dT%H:%M")


class AuditFilterForm(forms.Form):
    start = forms.DateTimeField(required=False, label="From", widget=DateTimeLocalInput())
    end = forms.DateTimeField(required=False, label="Until", widget=DateTimeLocalInput())
    actor = forms.CharField(required=False, max_length=150, label="Actor (username)")
    role = forms.ChoiceField(required=False, label="Role")
    action = forms.CharField(
        required=False, max_length=100, label="Action", widget=forms.TextInput(attrs={"list": "audit-actions"})
    )
    object_type = forms.CharField(required=False, max_length=100, label="Object type")
    object_id = forms.CharField(required=False, max_length=100, label="Object id")
    provider = forms.CharField(required=False, max_length=100, label="Provider")
    outcome = forms.ChoiceField(required=False, label="Outcome", choices=[("", "Any"), *Outcome.choices])
    text = forms.CharField(required=False, max_length=200, label="Text")
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    after = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def __init__(self, *args: Any, roles: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        role_field = self.fields["role"]
        assert isinstance(role_field, forms.ChoiceField)
        role_field.choices = [("", "Any"), *((name, name) for name in roles or [])]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and end <= start:
            self.add_error("end", "The end of the range must come after its start.")
        return cleaned

    def audit_filter(self) -> AuditFilter:
        data = self.cleaned_data
        return AuditFilter(
            start=data.get("start"),
            end=data.get("end"),
            **{
                name: (data.get(name) or "").strip()
                for name in ("actor", "role", "action", "object_type", "object_id", "provider", "outcome", "text")
            },
        )


class ExportRequestForm(forms.Form):
    export_format = forms.ChoiceField(choices=ExportFormat.choices)
