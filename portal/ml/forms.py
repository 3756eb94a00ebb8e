from __future__ import annotations

from django import forms

from portal.ml.models import FlagStatus, Purpose
from portal.routing.types import TASK_TYPES


class TrainForm(forms.Form):
    # retrieval rankers are trained per knowledge base, by the worker, as documents change (portal.ml.ranker)
    purpose = forms.ChoiceField(choices=[c for c in Purpose.choices if c[0] != Purpose.RETRIEVAL_RANKER])
    churn_days = forms.IntegerField(
        required=False, min_value=7, max_value=365, help_text="Churn: no interaction for this many days."
    )


class RelabelForm(forms.Form):
    task_type = forms.ChoiceField(choices=[(task, task) for task in TASK_TYPES])


class FlagReviewForm(forms.Form):
    verdict = forms.ChoiceField(
        choices=[(FlagStatus.CONFIRMED, "Confirm"), (FlagStatus.DISMISSED, "Dismiss")],
    )
