from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from portal.core.forms import ERROR_GRANTEE, ERROR_UNKNOWN_USER, GrantOrRevokeForm
from portal.customers.models import Channel, Customer, Tier
from portal.customers.validation import clean_account_numbers, clean_emails, clean_phones, split_values

MULTI_HELP = "One per line."
ERROR_ACCESS_CHOOSE_ONE = ERROR_GRANTEE
ERROR_ACCESS_UNKNOWN_USER = ERROR_UNKNOWN_USER


class CustomerFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=100, label="Search")
    tier = forms.ChoiceField(required=False, choices=[("", "All tiers"), *Tier.choices])


class CustomerForm(forms.Form):
    name = forms.CharField(max_length=200)
    organisation = forms.CharField(max_length=200, required=False)
    emails = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text=MULTI_HELP, label="E-mails"
    )
    phones = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text=MULTI_HELP)
    postal_address = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    account_numbers = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text=MULTI_HELP + " IBANs are checked."
    )
    tier = forms.ChoiceField(choices=Tier.choices, initial=Tier.STANDARD)
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}))
    owner = forms.ModelChoiceField(queryset=User.objects.none(), required=False, empty_label="nobody")
    restricted = forms.BooleanField(
        required=False, label="Restricted", help_text=Customer._meta.get_field("restricted").help_text
    )

    def __init__(self, *args: Any, can_set_access: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not can_set_access:
            # who owns a record and who may see it is for its owner and for those who see every record
            del self.fields["owner"]
            del self.fields["restricted"]
            return
        owner_field = self.fields["owner"]
        assert isinstance(owner_field, forms.ModelChoiceField)
        owner_field.queryset = User.objects.filter(is_active=True).order_by("username")

    @staticmethod
    def initial_for(customer: Customer) -> dict[str, Any]:
        return {
            "name": customer.name,
            "organisation": customer.organisation,
            "emails": "\n".join(customer.emails),
            "phones": "\n".join(customer.phones),
            "postal_address": customer.postal_address,
            "account_numbers": "\n".join(customer.account_numbers),
            "tier": customer.tier,
            "notes": customer.notes,
            "owner": customer.owner_id,
            "restricted": customer.restricted,
        }

    def _clean_multi(self, name: str, cleaner: Any) -> list[str]:
        try:
            return list(cleaner(split_values(self.cleaned_data[name])))
        except ValidationError as error:
            raise forms.ValidationError(error.messages) from error

    def clean_emails(self) -> list[str]:
        return self._clean_multi("emails", clean_emails)

    def clean_phones(self) -> list[str]:
        return self._clean_multi("phones", clean_phones)

    def clean_account_numbers(self) -> list[str]:
        return self._clean_multi("account_numbers", clean_account_numbers)


class InteractionForm(forms.Form):
    channel = forms.ChoiceField(choices=Channel.choices)
    occurred_at = forms.DateTimeField(
        label="When", widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
    )
    summary = forms.CharField(max_length=300)
    full_text = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}), label="Full text")


class CustomerImportForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text="UTF-8, first line is the header; at least a 'name' column.")


class InteractionImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="UTF-8, first line is the header; a customer_id or customer_email column, channel, time and summary.",
    )


class CustomerAccessForm(GrantOrRevokeForm):
    """Grant or revoke seeing one restricted record, for one role or one user (by username)."""
