from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from tests.routing.factories import CatalogModelFactory, UsageFactory

pytestmark = pytest.mark.django_db


def test_administrators_see_usage_by_user_role_model_and_day_with_a_chart(client: Any, alice: Any, sam: Any):
    UsageFactory.create(user=sam, username="sam", roles=["Staff"], model_name="Claude", cost=Decimal("0.25"))
    UsageFactory.create(
        user=sam, username="sam", roles=["Staff"], model_name="GPT", cost=Decimal("0.50"), outcome="error"
    )
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
    CatalogModelFactory.create(
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

    BudgetFactory.create(role=Group.objects.get(name="Staff"), limit=Decimal("50"), period="month", action="refuse")
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


# ---- the Models page: key variables, recent health, "Test connection" ----------------------------------
def test_the_page_says_whether_each_key_variable_is_set_and_never_shows_it(
    client: Any, alice: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("SET_KEY", "sk-live-never-shown")
    monkeypatch.delenv("MISSING_KEY", raising=False)
    CatalogModelFactory.create(display_name="Has key", api_key_env="SET_KEY")
    CatalogModelFactory.create(display_name="No key", api_key_env="MISSING_KEY")
    client.force_login(alice)

    html = client.get(reverse("routing:catalog")).content.decode()

    assert "sk-live-never-shown" not in html
    has, missing = html.split("Has key", 1)[1], html.split("No key", 1)[1]
    assert '<span class="status status-ready">set</span>' in has.split("</tr>", 1)[0]
    assert '<span class="status status-failed">not set</span>' in missing.split("</tr>", 1)[0]


def test_the_page_shows_each_models_recent_calls_failures_and_median(client: Any, alice: Any) -> None:
    model = CatalogModelFactory.create(display_name="Busy model")
    for total_ms in (100.0, 300.0, 200.0):
        UsageFactory.create(model_key=model.key, total_ms=total_ms, outcome="success")
    UsageFactory.create(model_key=model.key, total_ms=5000.0, outcome="error", error_class="Timeout")
    CatalogModelFactory.create(display_name="Idle model")
    client.force_login(alice)

    html = client.get(reverse("routing:catalog")).content.decode()

    busy = html.split("Busy model", 1)[1].split("</tr>", 1)[0]
    assert "4 calls" in busy and "1 failed" in busy and "Timeout" in busy and "median 200 ms" in busy
    assert "no calls" in html.split("Idle model", 1)[1].split("</tr>", 1)[0]


def test_an_administrator_tests_a_models_connection_through_the_gate(
    client: Any, alice: Any, fake_model: Any, fake_provider: Any
) -> None:
    from audit.models import AuditEvent
    from portal.routing.models import Usage
    from portal.routing.services import CONNECTION_TEST_PROMPT

    client.force_login(alice)
    response = client.post(reverse("routing:model_test", args=[fake_model.pk]), HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert "Fake primary answered" in response.content.decode()
    assert CONNECTION_TEST_PROMPT in fake_provider.requests[-1].text
    assert Usage.objects.filter(model_key=fake_model.key, outcome="success").count() == 1
    tested = AuditEvent.objects.get(action="routing.model_tested")
    assert tested.outcome == "success" and tested.details["ok"] is True and tested.object_id == str(fake_model.pk)
    assert AuditEvent.objects.filter(action="governance.egress_decided", object_type="routing.catalogmodel").exists()


def test_a_model_that_does_not_answer_says_so_and_is_audited_as_a_failure(
    client: Any, alice: Any, provider_key: str
) -> None:
    from audit.models import AuditEvent

    dead = CatalogModelFactory.create(display_name="Dead end", api_base="http://127.0.0.1:9")  # nothing listens there
    client.force_login(alice)

    response = client.post(reverse("routing:model_test", args=[dead.pk]))

    assert response.status_code == 302
    page = client.get(reverse("routing:catalog")).content.decode()
    assert "Dead end did not answer" in page
    assert AuditEvent.objects.get(action="routing.model_tested").outcome == "failure"


@pytest.mark.parametrize(("person", "status"), [("olivia", 403), ("sam", 403), ("oscar", 403)])
def test_only_administrators_may_test_a_connection(
    client: Any, person: str, status: int, request: Any, fake_model: Any, fake_provider: Any
) -> None:
    from audit.models import AuditEvent

    client.force_login(request.getfixturevalue(person))
    assert client.post(reverse("routing:model_test", args=[fake_model.pk])).status_code == status
    assert not fake_provider.requests
    assert not AuditEvent.objects.filter(action="routing.model_tested").exists()
