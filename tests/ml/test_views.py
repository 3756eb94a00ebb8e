"""The screens: who may see and do what (allowed, too little access: 403, missing: 404), bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from portal.ml import services
from portal.ml.models import ModelState, Purpose, RunStatus, TaskLabel, TrainingRun
from tests.assistant.factories import AssistantProfileFactory, ConversationFactory, MessageFactory
from tests.ml.helpers import trained_model

pytestmark = pytest.mark.django_db


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def model(db: None) -> Any:
    return trained_model(Purpose.INJECTION)


def test_administrators_see_the_models_and_others_are_refused(
    alice: Any, olivia: Any, sam: Any, oscar: Any, model: Any
):
    assert client_for(alice).get(reverse("ml:overview")).status_code == 200
    for user in (olivia, sam, oscar):
        assert client_for(user).get(reverse("ml:overview")).status_code == 403
    detail = reverse("ml:model_detail", args=[model.pk])
    assert client_for(alice).get(detail).status_code == 200
    assert client_for(olivia).get(detail).status_code == 200  # officers read the registry
    assert client_for(sam).get(detail).status_code == 403
    assert client_for(alice).get(reverse("ml:model_detail", args=[model.pk + 999])).status_code == 404


def test_the_model_page_shows_metrics_next_to_the_baseline_and_activation_works(alice: Any, model: Any):
    client = client_for(alice)
    page = client.get(reverse("ml:model_detail", args=[model.pk])).content.decode()
    assert "Macro-F1" in page and str(model.metrics["model"]["macro_f1"]) in page
    assert str(model.metrics["baseline"]["macro_f1"]) in page and model.sha256 in page
    assert "5-fold cross-validation" in page
    response = client.post(reverse("ml:model_activate", args=[model.pk]))
    assert response.status_code == 302
    model.refresh_from_db()
    assert model.state == ModelState.ACTIVE
    event = AuditEvent.objects.get(action="ml.model_activated")
    assert event.actor_username == "alice" and event.details["version"] == model.version


def test_staff_and_officers_may_not_activate_or_retire(olivia: Any, sam: Any, model: Any):
    for user in (olivia, sam):
        client = client_for(user)
        assert client.post(reverse("ml:model_activate", args=[model.pk])).status_code == 403
        assert client.post(reverse("ml:model_retire", args=[model.pk])).status_code == 403
    model.refresh_from_db()
    assert model.state == ModelState.CANDIDATE


def test_training_is_queued_not_run_in_the_web_process(alice: Any, sam: Any):
    response = client_for(alice).post(reverse("ml:train"), {"purpose": Purpose.TASK_ROUTER})
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("ml:run_detail", args=[run.pk])
    assert run.status == RunStatus.QUEUED and run.requested_by == alice  # the worker picks it up
    page = client_for(alice).get(reverse("ml:run_detail", args=[run.pk])).content.decode()
    assert 'hx-trigger="every 1s"' in page  # the page polls the run's progress
    assert client_for(sam).post(reverse("ml:train"), {"purpose": Purpose.TASK_ROUTER}).status_code == 403
    # a second run of the same purpose while one is queued: refused with a message
    again = client_for(alice).post(reverse("ml:train"), {"purpose": Purpose.TASK_ROUTER}, follow=True)
    assert "already queued or running" in again.content.decode() and TrainingRun.objects.count() == 1


def test_bad_training_input_is_a_400_with_the_errors(alice: Any):
    client = client_for(alice)
    assert client.post(reverse("ml:train"), {"purpose": "nonsense"}).status_code == 400
    response = client.post(reverse("ml:train"), {"purpose": Purpose.CUSTOMER_CHURN, "churn_days": "2"})
    assert response.status_code == 400 and "greater than or equal to 7" in response.content.decode()
    assert not TrainingRun.objects.exists()


def test_a_broken_active_model_is_reported_on_the_models_page(alice: Any, model: Any, model_dir: Path):
    services.model_activate(actor=None, model=model)
    (model_dir / model.file_name).write_bytes(b"not a model")
    from portal.ml.predict import active_model

    assert active_model(Purpose.INJECTION) is None
    page = client_for(alice).get(reverse("ml:overview")).content.decode()
    assert f"v{model.version} cannot be used" in page and "does not match the SHA-256" in page


def test_relabelling_is_one_click_for_administrators(alice: Any, sam: Any):
    conversation = ConversationFactory.create(owner=sam, profile=AssistantProfileFactory.create(task_type=""))
    question = MessageFactory.create(conversation=conversation, content="Which van should we buy?")
    MessageFactory.create(
        conversation=conversation,
        role="assistant",
        reply_to=question,
        route={"task_type": "routine", "tier": "economy", "reason": "routine: a short factual question"},
    )
    client = client_for(alice)
    page = client.get(reverse("ml:relabel")).content.decode()
    assert "Which van should we buy?" in page and "routine: a short factual question" in page
    viewed = AuditEvent.objects.get(action="ml.relabel_queue_viewed")  # other people's questions: audited
    assert viewed.details["message_ids"] == [question.pk] and viewed.actor_username == "alice"
    url = reverse("ml:relabel_set", args=[question.pk])
    row = client.post(url, {"task_type": "analyze"}, HTTP_HX_REQUEST="true")
    assert row.status_code == 200 and "<strong>analyze</strong>" in row.content.decode()
    assert TaskLabel.objects.get(message=question).task_type == "analyze"
    assert client.post(url, {"task_type": "poetry"}).status_code == 400
    assert client_for(sam).get(reverse("ml:relabel")).status_code == 403
    assert client_for(sam).post(url, {"task_type": "draft"}).status_code == 403


def test_officers_review_flags_and_others_may_not(olivia: Any, alice: Any, sam: Any):
    assert client_for(olivia).get(reverse("ml:flags")).status_code == 200
    assert client_for(alice).get(reverse("ml:flags")).status_code == 403
    assert client_for(sam).get(reverse("ml:flags")).status_code == 403
    assert client_for(olivia).post(reverse("ml:flag_review", args=[12345]), {"verdict": "confirmed"}).status_code == 404


def test_navigation_offers_the_screens_to_their_roles(alice: Any, olivia: Any, sam: Any):
    from portal.core.navigation import navigation_for

    assert "Local models" in [link.label for link in navigation_for(alice)]
    assert "Flagged passages" in [link.label for link in navigation_for(olivia)]
    labels = [link.label for link in navigation_for(sam)]
    assert "Local models" not in labels and "Flagged passages" not in labels
