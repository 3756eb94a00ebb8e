from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import Group, User

from portal.customers.selectors import customers_visible_to
from portal.memory.models import Kind, MemoryItem, Scope, Sensitivity, Status
from portal.memory.selectors import is_reviewer
from portal.memory.services import ERROR_SCOPE_CUSTOMER, ERROR_SCOPE_ROLE, MemoryDraft

ERROR_TOO_LONG = "Keep a memory short (at most {limit} characters): one statement per memory."


class MemoryFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=100, label="Search")
    scope = forms.ChoiceField(required=False, choices=[("", "All scopes"), *Scope.choices])
    status = forms.ChoiceField(required=False, choices=[("", "All statuses"), *Status.choices])
    kind = forms.ChoiceField(required=False, choices=[("", "All kinds"), *Kind.choices])
    customer = forms.IntegerField(required=False, widget=forms.HiddenInput, min_value=1)


class MemoryForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="One self-contained statement.")
    kind = forms.ChoiceField(choices=Kind.choices)
    scope = forms.ChoiceField(
        choices=Scope.choices, help_text="Who the assistant may use it for: everyone, one role, one customer, or you."
    )
    scope_role = forms.ModelChoiceField(queryset=Group.objects.none(), required=False, label="Role")
    scope_customer: forms.ModelChoiceField[Any] = forms.ModelChoiceField(
        queryset=None, required=False, label="Customer"
    )  # the customers this user may see, set in __init__
    sensitivity = forms.ChoiceField(choices=Sensitivity.choices, initial=Sensitivity.INTERNAL)

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        role_field = self.fields["scope_role"]
        customer_field = self.fields["scope_customer"]
        assert isinstance(role_field, forms.ModelChoiceField) and isinstance(customer_field, forms.ModelChoiceField)
        roles = Group.objects.filter(role__isnull=False)
        role_field.queryset = roles if is_reviewer(user) else roles.filter(user=user)
        customer_field.queryset = customers_visible_to(user=user).order_by("name")

    @staticmethod
    def initial_for(memory: MemoryItem) -> dict[str, Any]:
        return {
            "text": memory.text,
            "kind": memory.kind,
            "scope": memory.scope,
            "scope_role": memory.scope_role_id,
            "scope_customer": memory.scope_customer_id,
            "sensitivity": memory.sensitivity,
        }

    def clean_text(self) -> str:
        from django.conf import settings

        text = str(self.cleaned_data["text"]).strip()
        if len(text) > settings.MEMORY_MAX_CHARS:
            raise forms.ValidationError(ERROR_TOO_LONG.format(limit=settings.MEMORY_MAX_CHARS))
        return text

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        scope = cleaned.get("scope")
        if scope == Scope.ROLE and not cleaned.get("scope_role"):
            self.add_error("scope_role", ERROR_SCOPE_ROLE)
        if scope == Scope.CUSTOMER and not cleaned.get("scope_customer"):
            self.add_error("scope_customer", ERROR_SCOPE_CUSTOMER)
        return cleaned

    def draft(self) -> MemoryDraft:
        data = self.cleaned_data
        return MemoryDraft(
            text=data["text"],
            kind=data["kind"],
            scope=data["scope"],
            scope_role=data.get("scope_role"),
            scope_customer=data.get("scope_customer"),
            scope_user=self.user if data["scope"] == Scope.USER else None,
            sensitivity=data["sensitivity"],
        )
