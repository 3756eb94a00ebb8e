"""The site admin's audit door (audit/admin.py), through real admin screens (the model catalog's)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from portal.routing.models import CatalogModel
from tests.routing.factories import CatalogModelFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:routing_catalogmodel_changelist"


class AuditDown(RuntimeError):
    pass


@pytest.fixture
def admin_client_for_alice(alice: Any) -> Client:
    client = Client()
    client.force_login(alice)  # Administrator: the role gives the site admin, no superuser
    return client


@pytest.fixture
def failing_audit(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**kwargs: Any) -> None:
        raise AuditDown("the audit trail cannot be written")

    monkeypatch.setattr("audit.admin.audit", refuse)


def _change_data(model: CatalogModel, **changes: str) -> dict[str, str]:
    data = {
        "display_name": model.display_name, "litellm_model": model.litellm_model, "api_base": model.api_base,
        "api_key_env": model.api_key_env, "tier": model.tier, "enabled": "on" if model.enabled else "",
        "order": str(model.order), "region": model.region, "input_price_per_million": "",
        "output_price_per_million": "", "timeout_seconds": str(model.timeout_seconds),
    }  # fmt: skip
    data.update(changes)
    return {key: value for key, value in data.items() if value != "" or key not in {"enabled"}}


def _bulk_delete(client: Client, models: list[CatalogModel]) -> Any:
    return client.post(
        reverse(CHANGELIST),
        {"action": "delete_selected", "_selected_action": [str(model.pk) for model in models], "post": "yes"},
    )


def test_a_bulk_delete_writes_one_event_per_object_with_its_values(admin_client_for_alice: Client) -> None:
    kept, *doomed = CatalogModelFactory.create_batch(3, tier="premium")

    assert _bulk_delete(admin_client_for_alice, doomed).status_code == 302

    assert list(CatalogModel.objects.all()) == [kept]
    events = AuditEvent.objects.filter(action="routing.catalogmodel_deleted").order_by("seq")
    assert sorted(event.object_id for event in events) == sorted(str(model.pk) for model in doomed)
    assert all(event.actor_username == "alice" and event.details["screen"] == "site admin" for event in events)
    assert events[0].details["before"]["tier"] == "premium"
    assert events[0].details["before"]["litellm_model"] == "openai/fake-model"  # listed as a value field


def test_a_failing_audit_rolls_a_bulk_delete_back(admin_client_for_alice: Client, failing_audit: None) -> None:
    models = CatalogModelFactory.create_batch(3)
    with pytest.raises(AuditDown):
        _bulk_delete(admin_client_for_alice, models[:2])
    assert CatalogModel.objects.count() == 3
    assert not AuditEvent.objects.filter(action="routing.catalogmodel_deleted").exists()


def test_a_change_records_values_before_and_after_and_free_text_only_by_name(admin_client_for_alice: Client) -> None:
    model = CatalogModelFactory.create(tier="economy", api_base="")
    data = _change_data(model, tier="premium", api_base="http://127.0.0.1:9/private-endpoint-v1")

    response = admin_client_for_alice.post(reverse("admin:routing_catalogmodel_change", args=[model.pk]), data)

    assert response.status_code == 302, response.content.decode()[:3000]
    event = AuditEvent.objects.get(action="routing.catalogmodel_changed")
    assert event.details["fields"] == ["api_base", "tier"]
    assert (event.details["before"], event.details["after"]) == ({"tier": "economy"}, {"tier": "premium"})
    assert "private-endpoint" not in str(event.details)  # the API base is named, never copied
    assert event.details["object"] == str(model)


def test_a_failing_audit_rolls_a_change_back(admin_client_for_alice: Client, failing_audit: None) -> None:
    model = CatalogModelFactory.create(tier="economy")
    with pytest.raises(AuditDown):
        admin_client_for_alice.post(
            reverse("admin:routing_catalogmodel_change", args=[model.pk]), _change_data(model, tier="premium")
        )
    model.refresh_from_db()
    assert model.tier == "economy"


def test_saving_without_a_change_records_nothing(admin_client_for_alice: Client) -> None:
    model = CatalogModelFactory.create()
    response = admin_client_for_alice.post(
        reverse("admin:routing_catalogmodel_change", args=[model.pk]), _change_data(model)
    )
    assert response.status_code == 302
    assert not AuditEvent.objects.filter(action="routing.catalogmodel_changed").exists()


def test_rows_changed_in_the_list_are_audited_each(admin_client_for_alice: Client) -> None:
    first, second = CatalogModelFactory.create_batch(2, enabled=True)
    data = {
        "form-TOTAL_FORMS": "2", "form-INITIAL_FORMS": "2", "form-MIN_NUM_FORMS": "0", "form-MAX_NUM_FORMS": "1000",
        "form-0-id": str(first.pk), "form-0-order": str(first.order),  # unchecked: disabled
        "form-1-id": str(second.pk), "form-1-enabled": "on", "form-1-order": "77", "_save": "Save",
    }  # fmt: skip

    response = admin_client_for_alice.post(reverse(CHANGELIST), data)

    assert response.status_code == 302, response.content.decode()[:3000]
    events = {
        event.object_id: event.details for event in AuditEvent.objects.filter(action="routing.catalogmodel_changed")
    }
    assert events[str(first.pk)]["before"] == {"enabled": True} and events[str(first.pk)]["after"] == {"enabled": False}
    assert events[str(second.pk)]["after"] == {"order": 77}


def test_an_addition_records_the_new_values(admin_client_for_alice: Client) -> None:
    data = _change_data(CatalogModelFactory.build(display_name="New one", tier="research", order=3))
    response = admin_client_for_alice.post(reverse("admin:routing_catalogmodel_add"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    created = CatalogModel.objects.get(display_name="New one")
    event = AuditEvent.objects.get(action="routing.catalogmodel_created")
    assert event.object_id == str(created.pk)
    assert event.details["after"]["tier"] == "research" and event.details["after"]["order"] == 3
