from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from audit.models import AuditEvent
from portal.routing.models import ERROR_BUDGET_SCOPE, ERROR_KEY_LOOKS_LIKE_A_SECRET, CatalogModel
from tests.routing.factories import BudgetFactory, CatalogModelFactory

pytestmark = pytest.mark.django_db


def test_a_key_pasted_instead_of_a_variable_name_is_rejected():
    model = CatalogModelFactory.build(api_key_env="sk-ant-api03-abcdef")
    with pytest.raises(ValidationError) as raised:
        model.full_clean()
    assert raised.value.message_dict["api_key_env"] == [ERROR_KEY_LOOKS_LIKE_A_SECRET]


def test_a_model_string_needs_a_provider_prefix():
    with pytest.raises(ValidationError):
        CatalogModelFactory.build(litellm_model="gpt-4o").full_clean()


def test_a_budget_belongs_to_a_role_or_a_user(sam: Any):
    with pytest.raises(ValidationError, match=ERROR_BUDGET_SCOPE):
        BudgetFactory.build().full_clean()


def test_an_openai_compatible_endpoint_is_its_own_provider():
    model = CatalogModelFactory.build(litellm_model="openai/llama-3", api_base="http://127.0.0.1:9/v1")
    assert model.provider == "openai-compatible"


def test_switching_provider_is_a_change_of_data_on_the_admin_screen_and_is_audited(client: Any, db: None):
    from django.contrib.auth.models import User

    admin_user = User.objects.create_superuser("root", "root@example.test", "x" * 16)
    client.force_login(admin_user)
    model = CatalogModelFactory.create(litellm_model="openai/gpt-4o-mini")
    data = {
        "display_name": "Now Claude",
        "litellm_model": "anthropic/claude-haiku-4-5",
        "api_base": "",
        "api_key_env": "ANTHROPIC_API_KEY",
        "tier": "economy",
        "enabled": "on",
        "order": "1",
        "region": "eu",
        "input_price_per_million": "",
        "output_price_per_million": "",
        "timeout_seconds": "30",
    }
    response = client.post(reverse("admin:routing_catalogmodel_change", args=[model.pk]), data)

    assert response.status_code == 302
    model.refresh_from_db()
    assert (model.provider, model.region) == ("anthropic", "eu")
    event = AuditEvent.objects.get(action="routing.catalogmodel_changed")
    assert "litellm_model" in event.details["fields"]
    assert event.details["before"]["litellm_model"] == "openai/gpt-4o-mini"
    assert event.details["after"]["litellm_model"] == "anthropic/claude-haiku-4-5"
    assert CatalogModel.objects.count() == 1
