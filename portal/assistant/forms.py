from __future__ import annotations

from typing import Any

from django import forms

from portal.assistant.models import AssistantProfile
from portal.assistant.selectors import profiles_for_user
from portal.customers.selectors import customer_choices_for_user

QUESTION_MAX_CHARS = 8000
CUSTOMER_CHOICES = 500


class NewConversationForm(forms.Form):
    profile = forms.ModelChoiceField(queryset=AssistantProfile.objects.none(), empty_label=None, label="Assistant")

    customer = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None, label="About customer (optional)", choices=[]
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        profile_field, customer_field = self.fields["profile"], self.fields["customer"]
        assert isinstance(profile_field, forms.ModelChoiceField) and isinstance(customer_field, forms.ChoiceField)
        profile_field.queryset = profiles_for_user(user=user)
        choices = _customer_choices(user)
        if choices:
            customer_field.choices = [("", "No customer"), *choices]
        else:
            del self.fields["customer"]


def _customer_choices(user: Any) -> list[tuple[int, str]]:
    """Customers this user may see: the conversation may be about one."""
    return customer_choices_for_user(user=user, limit=CUSTOMER_CHOICES)


class AskForm(forms.Form):
    question = forms.CharField(
        max_length=QUESTION_MAX_CHARS,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Ask a question…"}),
        label="Your question",
    )
    # edit and resend: the earlier question of this conversation the new one is an edited copy of
    edited_from = forms.IntegerField(required=False, widget=forms.HiddenInput, min_value=1)


ERROR_EMPTY_TITLE = "Enter a title: a conversation cannot be renamed to nothing."


class RenameForm(forms.Form):
    title = forms.CharField(max_length=200, strip=True, label="Title", error_messages={"required": ERROR_EMPTY_TITLE})


class FeedbackForm(forms.Form):
    rating = forms.TypedChoiceField(choices=[("1", "Helpful"), ("-1", "Not helpful")], coerce=int)
    comment = forms.CharField(max_length=2000, required=False, strip=True, widget=forms.Textarea(attrs={"rows": 2}))


class SearchForm(forms.Form):
    q = forms.CharField(max_length=200, required=False, strip=True, label="Search your conversations")
