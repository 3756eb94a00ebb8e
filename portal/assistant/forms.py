from __future__ import annotations

from typing import Any

from django import forms

from knowledge.forms import MultipleFileField
from portal.assistant.export import ERROR_EXPORT_FORMAT, FORMAT_HTML, FORMAT_MARKDOWN
from portal.assistant.models import AssistantProfile
from portal.assistant.selectors import knowledge_bases_for_profile_editor, profiles_for_user
from portal.core.forms import ERROR_GRANTEE, GrantOrRevokeForm
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


class ExportForm(forms.Form):
    format = forms.ChoiceField(
        choices=[(FORMAT_MARKDOWN, "Markdown"), (FORMAT_HTML, "HTML")],
        required=False,
        error_messages={"invalid_choice": ERROR_EXPORT_FORMAT},
    )

    def clean_format(self) -> str:
        return self.cleaned_data.get("format") or FORMAT_MARKDOWN


class ProfileForm(forms.ModelForm):
    """An assistant profile as the portal's profile screen edits it. Its knowledge-base choices are only the
    bases the editor may read (the service checks that again); saving goes through `profile_save`."""

    class Meta:
        model = AssistantProfile
        fields = [
            "name", "description", "instructions", "knowledge_bases", "all_readable_knowledge", "task_type",
            "temperature", "max_tokens", "passages", "sensitive", "is_active",
        ]  # fmt: skip
        widgets = {
            "instructions": forms.Textarea(attrs={"rows": 6}),
            "knowledge_bases": forms.CheckboxSelectMultiple,
        }
        labels = {"is_active": "Active (offered to those who may use it)"}
        help_texts = {
            "knowledge_bases": "Searched for every question (only those the asking user may read). You can choose "
            "the knowledge bases you may read yourself.",
            "is_active": "A profile is deactivated rather than deleted: its conversations keep it.",
        }

    def __init__(self, *args: Any, editor: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        knowledge_field = self.fields["knowledge_bases"]
        assert isinstance(knowledge_field, forms.ModelMultipleChoiceField)
        knowledge_field.queryset = knowledge_bases_for_profile_editor(user=editor)
        if self.instance.pk is not None and not self.is_bound:  # only the readable ones are shown as chosen
            readable = knowledge_field.queryset.values("pk")
            self.initial["knowledge_bases"] = list(
                self.instance.knowledge_bases.filter(pk__in=readable).values_list("pk", flat=True)
            )


ERROR_PROFILE_GRANTEE = ERROR_GRANTEE


class ProfileAccessForm(GrantOrRevokeForm):
    """Grant or revoke `use_assistantprofile` for one role or one user (by username)."""


ERROR_NO_ATTACHMENT = "Choose a file to attach."


class AttachForm(forms.Form):
    # An empty or mistyped file is refused by the upload service with its name, not here for the whole batch.
    uploads = MultipleFileField(
        label="Attach files", required=False, help_text="PDF, DOCX, HTML, Markdown, text or CSV."
    )

    def clean_uploads(self) -> list[Any]:
        files = self.cleaned_data.get("uploads") or []
        if not files:
            raise forms.ValidationError(ERROR_NO_ATTACHMENT)
        return list(files)
