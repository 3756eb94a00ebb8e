from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from portal.routing.models import Budget

PERIOD_CHOICES = [("7", "Last 7 days"), ("30", "Last 30 days"), ("90", "Last 90 days")]


class UsageFilterForm(forms.Form):
    days = forms.TypedChoiceField(choices=PERIOD_CHOICES, coerce=int, initial=30, required=False, label="Period")


class BudgetForm(forms.ModelForm):
    """One budget: for a role or for one user (exactly one of the two), per day or per month."""

    class Meta:
        model = Budget
        fields = ["role", "user", "period", "limit", "action", "enabled"]
        help_texts = {
            "role": "A role's budget applies to each of its members.",
            "user": "Or one person.",
            "limit": "In the routing currency; 0 allows only the free offline model.",
        }

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        user_field, role_field = self.fields["user"], self.fields["role"]
        assert isinstance(user_field, forms.ModelChoiceField) and isinstance(role_field, forms.ModelChoiceField)
        user_field.queryset = get_user_model().objects.filter(is_active=True).order_by("username")
        role_field.queryset = Group.objects.order_by("name")
