from __future__ import annotations

from decimal import Decimal

import factory
from django.utils import timezone

from portal.routing.models import Budget, CatalogModel, Usage


class CatalogModelFactory(factory.django.DjangoModelFactory[CatalogModel]):
    class Meta:
        model = CatalogModel

    display_name = factory.Sequence(lambda n: f"Fake model {n}")
    litellm_model = "openai/fake-model"
    api_base = ""
    api_key_env = "FAKE_PROVIDER_KEY"
    tier = "standard"
    timeout_seconds = 5.0
    enabled = True
    order = factory.Sequence(lambda n: n)


class BudgetFactory(factory.django.DjangoModelFactory[Budget]):
    class Meta:
        model = Budget

    period = Budget.Period.MONTH
    limit = Decimal("1.00")
    action = Budget.Action.DOWNGRADE


class UsageFactory(factory.django.DjangoModelFactory[Usage]):
    class Meta:
        model = Usage

    created_at = factory.LazyFunction(timezone.now)
    username = ""
    roles = factory.LazyFunction(list)
    model_key = "model:0"
    model_name = "Fake model"
    provider = "openai"
    tokens_in = 100
    tokens_out = 50
    cost = Decimal("0.10")
    total_ms = 120.0
    outcome = "success"
