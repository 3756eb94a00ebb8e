from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from tests.routing.factories import CatalogModelFactory, UsageFactory

pytestmark = pytest.mark.django_db


def test_administrators_see_usage_by_user_role_model_and_day_with_a_chart(client: Any, alice: Any, sam: Any):
    UsageFactory(user=sam, username="sam", roles=["Staff"], model_name="Claude", cost=Decimal("0.25"))
    UsageFactory(user=sam, username="sam", roles=["Staff"], model_name="GPT", cost=Decimal("0.50"), outcome="error")
    client.force_login(alice)

    response = client.get(reverse("routing:usage"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "<svg" in html and 'class="bar"' in html and 'class="bar-error"' in html
    for expected in ("sam", "Staff", "Claude", "GPT", "USD 0.75"):
        assert expected in html
    assert "<script" not in html.split("</head>")[1]


def test_the_usage_report_fragment_is_served_to_htmx(client: Any, alice: Any):
    client.force_login(alice)
    response = client.get(reverse("routing:usage"), {"days": "7"}, headers={"HX-Request": "true"})

    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="usage-report">') and "<html" not in html
    assert "7 days" in html


def test_a_bad_period_is_a_400_with_the_error(client: Any, alice: Any):
    client.force_login(alice)
    response = client.get(reverse("routing:usage"), {"days": "9999"})

    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


@pytest.mark.parametrize("person", ["sam", "audrey", "olivia", "oscar"])
def test_others_may_not_see_usage(client: Any, person: str, request: Any):
    client.force_login(request.getfixturevalue(person))
    assert client.get(reverse("routing:usage")).status_code == 403


def test_anonymous_visitors_are_sent_to_sign_in(client: Any):
    response = client.get(reverse("routing:usage"))
    assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.parametrize("person", ["alice", "olivia"])
def test_administrators_and_officers_see_the_catalog_without_keys(
    client: Any, person: str, request: Any, monkeypatch: Any
):
    monkeypatch.setenv("CLAUDE_KEY", "sk-ant-very-secret")
    CatalogModelFactory(
        display_name="Claude Sonnet", litellm_model="anthropic/claude-sonnet-4-5", api_key_env="CLAUDE_KEY", region="eu"
    )
    client.force_login(request.getfixturevalue(person))

    response = client.get(reverse("routing:catalog"))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Claude Sonnet" in html and "CLAUDE_KEY" in html and "eu" in html
    assert "sk-ant-very-secret" not in html


def test_the_catalog_page_lists_budgets(client: Any, alice: Any):
    from django.contrib.auth.models import Group

    from tests.routing.factories import BudgetFactory

    BudgetFactory(role=Group.objects.get(name="Staff"), limit=Decimal("50"), period="month", action="refuse")
    client.force_login(alice)

    html = client.get(reverse("routing:catalog")).content.decode()

    assert "role Staff" in html and "USD 50.00 per month" in html and "Refuse" in html


@pytest.mark.parametrize("person", ["sam", "audrey", "oscar"])
def test_others_may_not_see_the_catalog(client: Any, person: str, request: Any):
    client.force_login(request.getfixturevalue(person))
    assert client.get(reverse("routing:catalog")).status_code == 403


def test_the_navigation_shows_usage_to_administrators_only(client: Any, alice: Any, sam: Any):
    client.force_login(alice)
    assert reverse("routing:usage") in client.get(reverse("home")).content.decode()
    client.force_login(sam)
    assert reverse("routing:usage") not in client.get(reverse("home")).content.decode()
