"""Reads of the local-model app. Screens check the role permission first; customer predictions are
scoped by the customers app's own visibility query."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet

from portal.core.access import not_visible
from portal.core.types import UserLike
from portal.ml.models import (
    CustomerPrediction,
    DocumentSuggestion,
    FlagKind,
    FlagStatus,
    ModelState,
    ModelVersion,
    PassageFlag,
    Purpose,
    TaskLabel,
    TrainingRun,
)

VIEW_PERMISSION = "ml.view_modelversion"
ERROR_NO_VIEW = "Your role may not see the local models."
ERROR_NO_REVIEW = "Your role may not review sensitivity and injection flags."
ERROR_NO_RELABEL = "Your role may not correct the task type of questions."


def require_permission(user: UserLike, permission: str, message: str) -> None:
    if not user.is_authenticated or not user.has_perm(permission):
        raise PermissionDenied(message)


# ---- registry ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PurposeOverview:
    purpose: str
    label: str
    active: ModelVersion | None
    candidates: list[ModelVersion]
    retired: list[ModelVersion]
    runs: list[TrainingRun]


def models_overview(*, user: UserLike) -> list[PurposeOverview]:
    require_permission(user, VIEW_PERMISSION, ERROR_NO_VIEW)
    versions = list(ModelVersion.objects.select_related("trained_by", "activated_by").order_by("purpose", "-version"))
    runs = list(TrainingRun.objects.select_related("requested_by", "model_version").order_by("-created_at")[:60])
    overview = []
    for purpose in Purpose:
        mine = [v for v in versions if v.purpose == purpose]
        overview.append(
            PurposeOverview(
                purpose=purpose.value,
                label=purpose.label,
                active=next((v for v in mine if v.state == ModelState.ACTIVE), None),
                candidates=[v for v in mine if v.state == ModelState.CANDIDATE],
                retired=[v for v in mine if v.state == ModelState.RETIRED][:5],
                runs=[run for run in runs if run.purpose == purpose][:5],
            )
        )
    return overview


def model_get(*, user: UserLike, model_id: int) -> ModelVersion:
    require_permission(user, VIEW_PERMISSION, ERROR_NO_VIEW)
    model = ModelVersion.objects.select_related("trained_by", "activated_by", "retired_by").filter(pk=model_id).first()
    if model is None:
        raise not_visible(ModelVersion, model_id, "No such model.")
    return model


def active_of(*, purpose: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(purpose=purpose, state=ModelState.ACTIVE).first()


def run_get(*, user: UserLike, run_id: int) -> TrainingRun:
    require_permission(user, VIEW_PERMISSION, ERROR_NO_VIEW)
    run = TrainingRun.objects.select_related("requested_by", "model_version").filter(pk=run_id).first()
    if run is None:
        raise not_visible(TrainingRun, run_id, "No such training run.")
    return run


# ---- relabelling queue -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QueueItem:
    message_id: int
    text: str
    created_at: Any
    routed_as: str
    reason: str
    label: str  # an administrator's correction, if any
    feedback: int | None


def relabel_queue(*, user: UserLike, limit: int = 50) -> list[QueueItem]:
    """Recent automatically routed questions with the type they were given, for one-click correction.

    These are other people's questions (conversations are otherwise private), so the read is audited
    with the ids of the questions shown."""
    from audit.services import audit
    from portal.assistant.selectors import questions_for_training

    require_permission(user, "ml.relabel_questions", ERROR_NO_RELABEL)
    questions = questions_for_training(limit=limit, automatic_only=True)
    audit(
        actor=user,
        action="ml.relabel_queue_viewed",
        object_type="assistant.message",
        details={"message_ids": [q.message_id for q in questions]},
    )
    labels = dict(
        TaskLabel.objects.filter(message_id__in=[q.message_id for q in questions]).values_list(
            "message_id", "task_type"
        )
    )
    return [
        QueueItem(
            message_id=q.message_id,
            text=q.text,
            created_at=q.created_at,
            routed_as=q.route_task_type,
            reason=q.route_reason,
            label=labels.get(q.message_id, ""),
            feedback=q.answer_feedback,
        )
        for q in questions
    ]


def queue_item(*, user: UserLike, message_id: int) -> QueueItem:
    from portal.assistant.selectors import questions_for_training

    require_permission(user, "ml.relabel_questions", ERROR_NO_RELABEL)
    found = questions_for_training(message_ids=[message_id], limit=1)
    if not found:
        raise not_visible(TaskLabel, None, "No such question.")
    q = found[0]
    label = TaskLabel.objects.filter(message_id=message_id).values_list("task_type", flat=True).first() or ""
    return QueueItem(
        message_id=q.message_id,
        text=q.text,
        created_at=q.created_at,
        routed_as=q.route_task_type,
        reason=q.route_reason,
        label=label,
        feedback=q.answer_feedback,
    )


# ---- officers' review --------------------------------------------------------------------------------------
def flags_for_review(*, user: UserLike, status: str = FlagStatus.OPEN, limit: int = 100) -> QuerySet[PassageFlag]:
    require_permission(user, "ml.review_sensitivity", ERROR_NO_REVIEW)
    return (
        PassageFlag.objects.filter(status=status)
        .select_related("chunk", "document", "document__knowledge_base", "model_version", "reviewed_by")
        .order_by("-probability", "-pk")[:limit]
    )


def flag_get(*, user: UserLike, flag_id: int) -> PassageFlag:
    require_permission(user, "ml.review_sensitivity", ERROR_NO_REVIEW)
    flag = (
        PassageFlag.objects.select_related("chunk", "document", "document__knowledge_base").filter(pk=flag_id).first()
    )
    if flag is None:
        raise not_visible(PassageFlag, flag_id, "No such flag.")
    return flag


def document_suggestions(*, user: UserLike, limit: int = 100) -> QuerySet[DocumentSuggestion]:
    require_permission(user, "ml.review_sensitivity", ERROR_NO_REVIEW)
    return DocumentSuggestion.objects.select_related("document", "document__knowledge_base").order_by(
        "-flagged_passages", "-created_at"
    )[:limit]


# ---- for the assistant's prompt -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PassageMark:
    """What the local models say about a passage the assistant is about to use."""

    injection: bool = False  # flagged as a possible prompt injection (and not dismissed)
    sensitivity_unreviewed: bool = False  # flagged as more sensitive than its base, not reviewed yet
    confirmed_label: str = ""  # an officer confirmed it is this sensitive


def passage_marks(*, chunk_ids: Iterable[int]) -> dict[int, PassageMark]:
    """One query for the retrieved passages of a question."""
    ids = list(chunk_ids)
    if not ids:
        return {}
    marks: dict[int, dict[str, Any]] = {}
    rows = PassageFlag.objects.filter(chunk_id__in=ids).exclude(status=FlagStatus.DISMISSED)
    for chunk_id, kind, status, predicted in rows.values_list("chunk_id", "kind", "status", "predicted_label"):
        mark = marks.setdefault(chunk_id, {})
        if kind == FlagKind.INJECTION:
            mark["injection"] = True
        elif status == FlagStatus.OPEN:
            mark["sensitivity_unreviewed"] = True
        else:
            mark["confirmed_label"] = predicted
    return {chunk_id: PassageMark(**values) for chunk_id, values in marks.items()}


# ---- customer predictions -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prediction:
    purpose: str
    title: str
    label: str
    probability: float
    reasons: list[dict[str, Any]]
    model_version: int

    @property
    def text(self) -> str:
        if self.purpose == Purpose.CUSTOMER_CHURN:
            churn = self.probability if self.label == "churn" else 1 - self.probability
            return f"churn risk {churn:.0%}"
        return f"next contact likely by {self.label} ({self.probability:.0%})"

    @property
    def reasons_text(self) -> str:
        return "; ".join(reason["text"] for reason in self.reasons)


def predictions_for_customers(*, user: UserLike, customer_ids: Iterable[int]) -> dict[int, list[Prediction]]:
    """Predictions of active models for the customers among `customer_ids` that the user may see."""
    from portal.customers.selectors import customers_visible_to

    visible = customers_visible_to(user=user).filter(pk__in=list(customer_ids)).values("pk")
    rows = (
        CustomerPrediction.objects.filter(customer_id__in=visible, model_version__state=ModelState.ACTIVE)
        .select_related("model_version")
        .order_by("customer_id", "purpose")
    )
    result: dict[int, list[Prediction]] = {}
    for row in rows:
        result.setdefault(row.customer_id, []).append(
            Prediction(
                purpose=row.purpose,
                title=Purpose(row.purpose).label,
                label=row.label,
                probability=row.probability,
                reasons=list(row.reasons),
                model_version=row.model_version.version,
            )
        )
    return result


def customer_prediction_fields(*, user: UserLike, customer_id: int) -> dict[str, str]:
    """The predictions as customer context for the assistant (one field, "predictions", so a policy can
    keep it local by name)."""
    predictions = predictions_for_customers(user=user, customer_ids=[customer_id]).get(customer_id, [])
    if not predictions:
        return {}
    lines = [f"{p.title}: {p.text} (local model v{p.model_version}; reasons: {p.reasons_text})" for p in predictions]
    return {"predictions": "\n".join(lines)}
