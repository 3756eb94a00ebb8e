from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import Group

from knowledge.models import KnowledgeBase
from portal.core.forms import GranteeForm

ERROR_NO_FILES = "Choose at least one file."


class KnowledgeBaseForm(forms.ModelForm):
    class Meta:
        model = KnowledgeBase
        fields = ["name", "description", "classification"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"multiple": True}))
        # an empty file is refused by the upload service with its name, not by the form for the whole batch
        kwargs.setdefault("allow_empty_file", True)
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)] if data else []


class UploadForm(forms.Form):
    uploads = MultipleFileField(label="Files", required=False, help_text="PDF, DOCX, HTML, Markdown, text or CSV.")
    restricted_to_roles = forms.ModelMultipleChoiceField(
        queryset=Group.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Only for these roles (optional)",
        help_text="Leave empty to let everyone with access to the knowledge base read the documents.",
    )

    def clean_uploads(self) -> list[Any]:
        files = self.cleaned_data.get("uploads") or []
        if not files:
            raise forms.ValidationError(ERROR_NO_FILES)
        return list(files)


class GrantForm(GranteeForm):
    LEVELS = [
        ("view", "View (search and read)"),
        ("change", "Change (upload, delete)"),
        ("manage", "Manage (grant access)"),
        ("none", "No access"),
    ]

    level = forms.ChoiceField(choices=LEVELS)

    field_order = ["level", "group", "username"]


class SearchForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=1000,
        label="Search",
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off"}),
    )
    kb = forms.ModelChoiceField(
        queryset=KnowledgeBase.objects.none(), required=False, label="Knowledge base", empty_label="All"
    )
    mode = forms.ChoiceField(
        choices=[("hybrid", "Hybrid"), ("lexical", "Keywords (BM25)"), ("vector", "Meaning (vector)")],
        required=False,
        initial="hybrid",
    )

    def __init__(self, *args: Any, knowledge_bases: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if knowledge_bases is not None:
            field = self.fields["kb"]
            assert isinstance(field, forms.ModelChoiceField)
            field.queryset = knowledge_bases


class RestrictionForm(forms.Form):
    restricted_to_roles = forms.ModelMultipleChoiceField(
        queryset=Group.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Only for these roles",
    )


class MoveForm(forms.Form):
    """Where a document may go: the other knowledge bases the user may change."""

    knowledge_base = forms.ModelChoiceField(queryset=KnowledgeBase.objects.none(), label="Move to")

    def __init__(self, *args: Any, knowledge_bases: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["knowledge_base"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = knowledge_bases
