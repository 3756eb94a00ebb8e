from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from portal.core.parameters import PARAMETERS, Effective, Parameter

ERROR_GRANTEE = "Choose a role or enter a username (one of the two)."
ERROR_UNKNOWN_USER = "No active user with that username."
ERROR_UNKNOWN_USER_ANY = "No user with that username."


class GranteeForm(forms.Form):
    """Who a grant or revoke is for: one role, or one user by username (`cleaned_data["user"]`, else None).
    A grant goes only to an active account; a revoke (`is_grant()` False) finds an inactive one too."""

    group = forms.ModelChoiceField(queryset=Group.objects.order_by("name"), required=False, label="Role")
    username = forms.CharField(required=False, max_length=150, strip=True, label="or user (username)")

    def is_grant(self, data: dict[str, Any]) -> bool:
        return True

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        group, username = data.get("group"), data.get("username") or ""
        if bool(group) == bool(username):
            raise forms.ValidationError(ERROR_GRANTEE)
        data["user"] = None
        if username:
            granting = self.is_grant(data)
            users = get_user_model().objects.filter(username=username)
            data["user"] = (users.filter(is_active=True) if granting else users).first()
            if data["user"] is None:
                self.add_error("username", ERROR_UNKNOWN_USER if granting else ERROR_UNKNOWN_USER_ANY)
        return data


class GrantOrRevokeForm(GranteeForm):
    """A grantee and whether to grant or revoke (one permission, the caller's)."""

    action = forms.ChoiceField(choices=[("grant", "Grant"), ("revoke", "Revoke")], initial="grant")

    field_order = ["group", "username", "action"]

    def is_grant(self, data: dict[str, Any]) -> bool:
        return data.get("action") == "grant"


def _field(parameter: Parameter, current: Effective) -> forms.Field:
    unit = settings.ROUTING_CURRENCY if parameter.kind == "money" else parameter.unit
    common: dict[str, Any] = {
        "label": parameter.label + (f" ({unit})" if unit else ""),
        "help_text": parameter.help,
        "required": False,
        "disabled": current.source == "environment",
        "initial": current.value,
    }
    if parameter.kind == "bool":
        return forms.BooleanField(**common)
    if parameter.kind == "money":
        return forms.DecimalField(min_value=parameter.minimum, max_value=parameter.maximum, max_digits=12,
                                  decimal_places=4, **common)  # fmt: skip
    if parameter.kind == "int":
        return forms.IntegerField(
            min_value=int(parameter.minimum) if parameter.minimum is not None else None,
            max_value=int(parameter.maximum) if parameter.maximum is not None else None,
            **common,
        )
    return forms.FloatField(min_value=parameter.minimum, max_value=parameter.maximum, **common)


class ParametersForm(forms.Form):
    """One field per parameter (environment-pinned ones disabled); an empty number field means "the default"."""

    reason = forms.CharField(max_length=500, label="Why this change", help_text="Kept with the version and in the "
                             "audit trail.", widget=forms.TextInput)  # fmt: skip

    def __init__(self, *args: Any, current: list[Effective], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.current = {item.parameter.name: item for item in current}
        reason = self.fields.pop("reason")
        for parameter in PARAMETERS:
            self.fields[parameter.name] = _field(parameter, self.current[parameter.name])
        self.fields["reason"] = reason

    def values(self) -> dict[str, Any]:
        return {p.name: self.cleaned_data.get(p.name) for p in PARAMETERS if not self.fields[p.name].disabled}

    def groups(self) -> list[tuple[str, list[tuple[forms.BoundField, Effective]]]]:
        grouped: dict[str, list[tuple[forms.BoundField, Effective]]] = {}
        for parameter in PARAMETERS:
            grouped.setdefault(parameter.group, []).append((self[parameter.name], self.current[parameter.name]))
        return list(grouped.items())


class RestoreForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False)
