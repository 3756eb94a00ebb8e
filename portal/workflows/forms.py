from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import Group

from portal.workflows.definition import Definition


class DefinitionForm(forms.Form):
    yaml_text = forms.CharField(
        label="Definition (YAML)", widget=forms.Textarea(attrs={"rows": 30, "spellcheck": "false"})
    )
    reason = forms.CharField(label="Why this change", max_length=1000)


class GrantForm(forms.Form):
    roles = forms.ModelMultipleChoiceField(
        queryset=Group.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Roles that may run it",
    )


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    note = forms.CharField(required=False, max_length=1000)


class RestoreForm(forms.Form):
    reason = forms.CharField(max_length=1000)


INPUT_FIELDS: dict[str, Any] = {
    "text": lambda label, required: forms.CharField(
        label=label, required=required, widget=forms.Textarea(attrs={"rows": 3})
    ),
    "number": lambda label, required: forms.FloatField(label=label, required=required),
    "date": lambda label, required: forms.DateField(
        label=label, required=required, widget=forms.DateInput(attrs={"type": "date"})
    ),
    "customer": lambda label, required: forms.IntegerField(label=f"{label} (customer id)", required=required),
    "document": lambda label, required: forms.IntegerField(label=f"{label} (document id)", required=required),
    "knowledge_base": lambda label, required: forms.IntegerField(
        label=f"{label} (knowledge base id)", required=required
    ),
}


class RunForm(forms.Form):
    """A field per input of the definition."""

    def __init__(self, *args: Any, definition: Definition, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for spec in definition.inputs:
            field = INPUT_FIELDS[spec.type](spec.label or spec.name, spec.required and spec.default is None)
            field.initial = spec.default
            self.fields[spec.name] = field
