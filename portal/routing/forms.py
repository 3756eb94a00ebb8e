from __future__ import annotations

from django import forms

PERIOD_CHOICES = [("7", "Last 7 days"), ("30", "Last 30 days"), ("90", "Last 90 days")]


class UsageFilterForm(forms.Form):
    days = forms.TypedChoiceField(choices=PERIOD_CHOICES, coerce=int, initial=30, required=False, label="Period")
