"""The learned task router in the route decision, its fallback, and where its labels come from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audit.models import AuditEvent
from portal.ml import services, training
from portal.ml.models import ModelState, Purpose
from portal.ml.registry import ERROR_HASH_MISMATCH
from portal.routing.classifier import classify
from portal.routing.services import route_decide
from tests.assistant.factories import AssistantProfileFactory, ConversationFactory, MessageFactory
from tests.ml.helpers import seed_task_examples, trained_model

pytestmark = pytest.mark.django_db

# no keyword cue, so the keyword classifier calls it routine
QUESTION = "Is leasing the Leeds unit for five years smarter than buying it outright?"


@pytest.fixture
def router(db: None) -> Any:
    seed_task_examples()
    model = trained_model(Purpose.TASK_ROUTER)
    return services.model_activate(actor=None, model=model)


def test_an_active_router_decides_the_task_type_and_shows_its_probability(router: Any, sam: Any) -> None:
    decision = route_decide(user=sam, task_type=None, question=QUESTION)
    assert decision.reason.startswith(f"{decision.task_type}: learned task router v{router.version} (probability 0.")
    probability = float(decision.reason.split("probability ")[1].split(")")[0])
    assert 0.2 < probability <= 1.0
    # a fixed task type of the profile still wins over any model
    assert route_decide(user=sam, task_type="draft", question=QUESTION).reason.startswith("draft: set by")


def test_without_an_active_router_the_keyword_classifier_answers(router: Any, sam: Any) -> None:
    services.model_retire(actor=None, model=router)
    decision = route_decide(user=sam, task_type=None, question=QUESTION)
    assert decision.task_type == classify(QUESTION).task_type
    assert decision.reason.startswith(classify(QUESTION).reason)
    assert "learned" not in decision.reason


def test_a_tampered_model_file_falls_back_says_so_and_is_audited(router: Any, sam: Any, model_dir: Path) -> None:
    path = model_dir / router.file_name
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")

    decision = route_decide(user=sam, task_type=None, question=QUESTION)

    assert decision.task_type == classify(QUESTION).task_type
    assert f"learned task router v{router.version} unavailable, keyword classifier used" in decision.reason
    router.refresh_from_db()
    assert router.load_error == ERROR_HASH_MISMATCH.format(name=router.file_name)
    assert router.state == ModelState.ACTIVE  # nothing retired behind the administrator's back
    events = AuditEvent.objects.filter(action="ml.model_load_failed", object_id=str(router.pk))
    assert events.count() == 1
    route_decide(user=sam, task_type=None, question=QUESTION)
    assert events.count() == 1  # once per process, not once per question


def test_a_missing_model_file_falls_back_too(router: Any, sam: Any, model_dir: Path) -> None:
    (model_dir / router.file_name).unlink()
    decision = route_decide(user=sam, task_type=None, question=QUESTION)
    assert "unavailable, keyword classifier used" in decision.reason
    router.refresh_from_db()
    assert "is missing" in router.load_error


def test_training_labels_come_from_fixed_profiles_relabels_and_poor_economy_ratings(alice: Any, sam: Any) -> None:
    fixed = ConversationFactory.create(owner=sam, profile=AssistantProfileFactory.create(task_type="summarize"))
    automatic = ConversationFactory.create(owner=sam, profile=AssistantProfileFactory.create(task_type=""))
    from_profile = MessageFactory.create(conversation=fixed, content="Sum up the onboarding notes.")
    relabelled = MessageFactory.create(conversation=automatic, content="What should we do about the surcharge?")
    MessageFactory.create(
        conversation=automatic, role="assistant", reply_to=relabelled, route={"task_type": "routine", "tier": "economy"}
    )
    rated = MessageFactory.create(conversation=automatic, content="Is the new supplier better than the old one?")
    MessageFactory.create(
        conversation=automatic,
        role="assistant",
        reply_to=rated,
        feedback=-1,
        route={"task_type": "routine", "tier": "economy"},
    )
    unlabelled = MessageFactory.create(conversation=automatic, content="When is payday?")
    MessageFactory.create(
        conversation=automatic,
        role="assistant",
        reply_to=unlabelled,
        feedback=1,
        route={"task_type": "routine", "tier": "economy"},
    )

    services.task_label_set(actor=alice, message_id=relabelled.pk, task_type="analyze")
    dataset = training.task_router_dataset()

    labels = dict(zip(dataset.texts, dataset.labels, strict=True))
    assert labels == {
        from_profile.content: "summarize",
        relabelled.content: "analyze",
        rated.content: "draft",  # one tier up from economy: the standard tier's task type
    }
    assert dataset.sources == {"profile": 1, "relabel": 1, "feedback": 1}
    event = AuditEvent.objects.get(action="ml.question_relabelled")
    assert event.details["task_type"] == "analyze" and event.details["routed_as"] == "routine"


def test_only_administrators_may_relabel(sam: Any) -> None:
    from django.core.exceptions import PermissionDenied

    message = MessageFactory.create(conversation=ConversationFactory.create(owner=sam))
    with pytest.raises(PermissionDenied):
        services.task_label_set(actor=sam, message_id=message.pk, task_type="draft")
