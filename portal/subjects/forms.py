from __future__ import annotations

from django import forms

from portal.subjects.models import RequestKind, SubjectType


class SubjectRequestForm(forms.Form):
    kind = forms.ChoiceField(choices=RequestKind.choices, label="Request")
    subject_type = forms.ChoiceField(choices=SubjectType.choices, label="About a")
    subject_id = forms.IntegerField(min_value=1, label="Number (id)")
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), max_length=2000, required=False,
        help_text="How the request reached you (a reference, not the person's details).",
    )  # fmt: skip
