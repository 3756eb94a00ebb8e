"""Customer predictions: trained on the demo histories, shown with reasons, scoped like the records."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from portal.customers.demo import demo_customers_ensure
from portal.customers.models import Customer
from portal.ml import services
from portal.ml.models import CustomerPrediction, Purpose
from portal.ml.selectors import customer_prediction_fields, predictions_for_customers
from tests.accounts.factories import UserFactory
from tests.ml.helpers import trained_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def churn(db: None) -> Any:
    UserFactory.create(username="staff", roles=["Staff"])
    UserFactory.create(username="admin", roles=["Administrator"])
    demo_customers_ensure()
    model = services.model_activate(actor=None, model=trained_model(Purpose.CUSTOMER_CHURN))
    assert services.customer_predictions_refresh(purpose=Purpose.CUSTOMER_CHURN) == Customer.objects.count()
    return model


def test_the_demo_histories_train_models_that_beat_the_majority_class(churn: Any) -> None:
    assert churn.metrics["model"]["macro_f1"] > churn.metrics["baseline"]["macro_f1"]
    assert churn.metrics["model"]["auc"] > 0.6
    assert churn.metrics["split"]["by"] == "customer"
    channel = trained_model(Purpose.CUSTOMER_NEXT_CHANNEL)
    assert channel.metrics["model"]["accuracy"] > channel.metrics["baseline"]["accuracy"]


def test_each_prediction_has_its_top_reasons_and_the_batch_is_audited(churn: Any) -> None:
    predictions = list(CustomerPrediction.objects.all())
    assert {p.label for p in predictions} <= {"churn", "active"}
    with_reasons = [p for p in predictions if p.reasons]
    assert len(with_reasons) > len(predictions) * 0.9
    assert all(1 <= len(p.reasons) <= 3 and p.reasons[0]["text"] for p in with_reasons)
    event = AuditEvent.objects.get(action="ml.predictions_made")
    assert event.details["customers"] == len(predictions) and event.object_id == str(churn.pk)


def test_predictions_follow_the_record_permissions(churn: Any, sam: Any) -> None:
    restricted = Customer.objects.get(restricted=True)
    visible = Customer.objects.filter(restricted=False).first()
    assert visible is not None
    shown = predictions_for_customers(user=sam, customer_ids=[restricted.pk, visible.pk])
    assert list(shown) == [visible.pk]
    assert "churn risk" in customer_prediction_fields(user=sam, customer_id=visible.pk)["predictions"]
    assert customer_prediction_fields(user=sam, customer_id=restricted.pk) == {}


def test_the_customer_page_and_list_show_the_prediction(churn: Any, sam: Any) -> None:
    client = Client()
    client.force_login(sam)
    customer = Customer.objects.filter(restricted=False).order_by("name").first()
    assert customer is not None
    prediction = CustomerPrediction.objects.get(customer=customer)
    page = client.get(reverse("customers:customer_detail", args=[customer.pk])).content.decode()
    assert "Predictions" in page and "churn risk" in page and prediction.reasons[0]["text"] in page
    listing = client.get(reverse("customers:customer_list")).content.decode()
    assert '<th scope="col">Prediction</th>' in listing and "churn risk" in listing


def test_a_retired_model_shows_no_predictions(churn: Any, sam: Any) -> None:
    services.model_retire(actor=None, model=churn)
    assert predictions_for_customers(user=sam, customer_ids=list(Customer.objects.values_list("pk", flat=True))) == {}


def test_the_assistant_gets_the_prediction_as_a_customer_field_the_gate_can_keep_local(churn: Any, sam: Any) -> None:
    from governance.gate import Destination, egress_gate
    from governance.policy import default_document
    from portal.assistant import pipeline as assistant
    from tests.assistant.factories import AssistantProfileFactory

    customer = Customer.objects.filter(restricted=False).first()
    assert customer is not None
    context = assistant.retrieve(
        user=sam, question="How is this customer doing?", knowledge_bases=[], customer_id=customer.pk
    )
    assert "predictions" in context.customer_predictions
    parts = assistant.build(profile=AssistantProfileFactory.create(), history=[], context=context, question="How?")
    part = next(p for p in parts if p.source.get("field") == "predictions")
    assert part.kind == "customer" and "churn risk" in part.text
    document = default_document()
    for rules in document["roles"].values():
        rules["withheld_customer_fields"] = ["predictions"]
    gated = egress_gate(
        user=sam,
        conversation_key="t",
        destinations=[Destination(key="model:1", provider="openai")],
        parts=parts,
        persist_vault=False,
        policy_document=document,
    )
    row = next(r for r in gated.manifest["parts"] if r["source"].get("field") == "predictions")
    assert row["decision"] == "withheld"
