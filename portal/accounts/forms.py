from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import password_validators_help_text_html
from django.contrib.auth.signals import user_login_failed

from portal.accounts.backends import ERROR_PASSWORD_LOGIN_OFF, password_login_allowed
from portal.accounts.selectors import role_groups

ERROR_PASSWORDS_DIFFER = "The two passwords differ."


def _role_field() -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        choices=[(group.name, group.name) for group in role_groups()],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=(
            "A user with several roles gets what each allows; for what leaves the building, the strictest rule applies."
        ),
    )


class UserFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=100, label="Search")
    role = forms.ChoiceField(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        role_field = self.fields["role"]
        assert isinstance(role_field, forms.ChoiceField)
        role_field.choices = [("", "All roles")] + [(g.name, g.name) for g in role_groups()]


class UserCreateForm(forms.Form):
    username = forms.CharField(max_length=150)
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    email = forms.EmailField(required=False)
    password1 = forms.CharField(
        label="Password",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Password again", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["roles"] = _role_field()

    def clean_username(self) -> str:
        username: str = self.cleaned_data["username"]
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("A user with that username already exists.")
        return username

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("password1") and cleaned.get("password1") != cleaned.get("password2"):
            self.add_error("password2", ERROR_PASSWORDS_DIFFER)
        return cleaned


class UserEditForm(forms.Form):
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    email = forms.EmailField(required=False)
    is_active = forms.BooleanField(required=False, label="Active (may sign in)")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["roles"] = _role_field()


class PortalAuthenticationForm(AuthenticationForm):
    """The sign-in form; under SSO-only (SSO_PASSWORD_LOGIN=0) it says so instead of checking the password."""

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        if username and not password_login_allowed(username):
            # recorded like any failed sign-in (audit event, axes' count), without looking at the password
            user_login_failed.send(sender=__name__, credentials={"username": username}, request=self.request)
            raise forms.ValidationError(ERROR_PASSWORD_LOGIN_OFF, code="password_login_off")
        return super().clean()
