from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group

from portal.routing.classifier import classify
from portal.routing.models import TaskTier
from portal.routing.services import ERROR_UNKNOWN_TASK_TYPE, BudgetExceeded, route_decide
from portal.routing.types import OFFLINE_DESTINATION
from tests.routing.factories import BudgetFactory, CatalogModelFactory, UsageFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("question", "task_type", "cue"),
    [
        ("Compare the two suppliers and weigh the trade-offs", "analyze", "'compare'"),
        ("Summarize the onboarding guide", "summarize", "'summarize'"),
        ("Draft an email to the customer about the delay", "draft", "'draft'"),
        ("Do an in-depth investigation of all sources on heat pumps", "research", "'in-depth'"),
        ("When is the office open?", "routine", "no task cue"),
    ],
)
def test_the_classifier_names_the_task_type_and_its_reason(question: str, task_type: str, cue: str):
    result = classify(question)

    assert result.task_type == task_type
    assert result.reason.startswith(f"{task_type}: ")
    assert cue in result.reason


def test_the_classifier_explains_a_comparison():
    assert classify("Compare plan A and B, what are the trade-offs?").reason == (
        "analyze: asks to compare and weigh options (matched 'compare', 'trade-offs')"
    )


def test_a_long_question_without_cues_gets_more_reasoning():
    result = classify(" ".join(["word"] * 80))
    assert result.task_type == "analyze" and "80 words" in result.reason


def test_with_no_cloud_model_the_offline_model_answers(sam: Any):
    decision = route_decide(user=sam, task_type=None, question="Summarize the handbook")

    assert decision.tier == "offline"
    assert decision.candidates == (OFFLINE_DESTINATION,)
    assert decision.task_type == "summarize"
    assert "no cloud model is configured" in decision.reason


def test_the_tier_models_come_first_then_the_other_tiers_then_offline(sam: Any):
    economy = CatalogModelFactory.create(tier="economy")
    standard_b = CatalogModelFactory.create(tier="standard", order=2)
    standard_a = CatalogModelFactory.create(tier="standard", order=1)
    premium = CatalogModelFactory.create(tier="premium")
    research = CatalogModelFactory.create(tier="research")
    CatalogModelFactory.create(tier="standard", enabled=False)

    decision = route_decide(user=sam, task_type="draft", question="anything")

    assert decision.tier == "standard"
    keys = [candidate.key for candidate in decision.candidates]
    assert keys == [standard_a.key, standard_b.key, premium.key, economy.key, research.key, "offline"]
    assert decision.reason == "draft: set by the assistant profile → standard tier"


def test_the_task_tier_map_is_data(sam: Any):
    CatalogModelFactory.create(tier="economy")
    premium = CatalogModelFactory.create(tier="premium")
    TaskTier.objects.filter(task_type="routine").update(tier="premium")

    decision = route_decide(user=sam, task_type=None, question="When is the office open?")

    assert (decision.task_type, decision.tier) == ("routine", "premium")
    assert decision.candidates[0].key == premium.key


def test_an_empty_tier_falls_back_and_says_so(sam: Any):
    economy = CatalogModelFactory.create(tier="economy")
    decision = route_decide(user=sam, task_type="analyze", question="x")

    assert decision.tier == "premium"
    assert decision.candidates[0].key == economy.key
    assert "no enabled model in it, so economy first" in decision.reason


def test_the_offline_fallback_can_be_switched_off(sam: Any, settings: Any):
    settings.ROUTING_OFFLINE_FALLBACK = False
    model = CatalogModelFactory.create(tier="economy")
    decision = route_decide(user=sam, task_type="routine", question="x")

    assert [candidate.key for candidate in decision.candidates] == [model.key]


def test_a_destination_carries_the_governance_flags(sam: Any):
    model = CatalogModelFactory.create(
        tier="economy", litellm_model="anthropic/claude-haiku-4-5", zero_data_retention=True, region="eu"
    )
    destination = route_decide(user=sam, task_type="routine", question="x").candidates[0]

    assert (destination.key, destination.provider, destination.is_local) == (model.key, "anthropic", False)
    assert (destination.zero_data_retention, destination.region) == (True, "eu")


def test_an_unknown_task_type_is_refused(sam: Any):
    with pytest.raises(ValueError, match="Unknown task type"):
        route_decide(user=sam, task_type="gossip", question="x")
    assert "gossip" in ERROR_UNKNOWN_TASK_TYPE.format(task_type="gossip")


# ---- budgets ----------------------------------------------------------------------------------------
def test_over_a_user_budget_the_route_is_downgraded_with_a_note(sam: Any):
    economy = CatalogModelFactory.create(tier="economy")
    CatalogModelFactory.create(tier="premium")
    BudgetFactory.create(user=sam, limit=Decimal("1.00"), period="day", action="downgrade")
    UsageFactory.create(user=sam, cost=Decimal("1.20"))

    decision = route_decide(user=sam, task_type="analyze", question="x")

    assert decision.tier == "economy"
    assert [candidate.key for candidate in decision.candidates] == [economy.key, "offline"]
    assert decision.budget_note == (
        "Your daily AI budget of USD 1.00 is used up (USD 1.20 spent). Answering with the economy tier instead of"
        " premium."
    )


def test_over_budget_in_the_cheapest_tier_only_the_offline_model_answers(sam: Any):
    CatalogModelFactory.create(tier="economy")
    BudgetFactory.create(user=sam, limit=Decimal("1.00"))
    UsageFactory.create(user=sam, cost=Decimal("1.00"))

    decision = route_decide(user=sam, task_type="routine", question="x")

    assert decision.tier == "offline" and decision.candidates == (OFFLINE_DESTINATION,)


def test_a_role_budget_counts_everyone_in_the_role_and_can_refuse(sam: Any, alice: Any, settings: Any):
    settings.ROUTING_OFFLINE_FALLBACK = False  # with the offline fallback on, the free offline model answers
    CatalogModelFactory.create(tier="economy")
    BudgetFactory.create(role=Group.objects.get(name="Staff"), limit=Decimal("2.00"), period="month", action="refuse")
    UsageFactory.create(user=None, roles=["Staff"], cost=Decimal("1.50"))
    UsageFactory.create(user=None, roles=["Staff"], cost=Decimal("0.60"))

    with pytest.raises(BudgetExceeded) as raised:
        route_decide(user=sam, task_type="routine", question="x")

    assert raised.value.message == (
        "The Staff role's monthly AI budget of USD 2.00 is used up (USD 2.10 spent). It resets at the start of next"
        " month."
    )
    # alice is an administrator, not in Staff: her route is unaffected
    assert route_decide(user=alice, task_type="routine", question="x").budget_note == ""


def test_spend_outside_the_period_does_not_count(sam: Any):
    from datetime import timedelta

    from django.utils import timezone

    CatalogModelFactory.create(tier="economy")
    BudgetFactory.create(user=sam, limit=Decimal("1.00"), period="day", action="refuse")
    UsageFactory.create(user=sam, cost=Decimal("5.00"), created_at=timezone.now() - timedelta(days=2))

    assert route_decide(user=sam, task_type="routine", question="x").tier == "economy"


def test_a_disabled_budget_is_ignored(sam: Any):
    CatalogModelFactory.create(tier="economy")
    BudgetFactory.create(user=sam, limit=Decimal("0"), action="refuse", enabled=False)

    assert route_decide(user=sam, task_type="routine", question="x").tier == "economy"


def test_a_used_up_budget_does_not_refuse_the_free_offline_model(sam: Any):
    CatalogModelFactory.create(tier="economy")
    BudgetFactory.create(user=sam, limit=Decimal("0.0001"), period="day", action="refuse")
    UsageFactory.create(user=sam, cost=Decimal("0.00015"))

    decision = route_decide(user=sam, task_type="routine", question="x")

    assert decision.tier == "offline" and decision.candidates == (OFFLINE_DESTINATION,)
    # and the money in the note is true: not "USD 0.00 is used up (USD 0.00 spent)"
    assert decision.budget_note == (
        "Your daily AI budget of USD 0.0001 is used up (USD 0.00015 spent). Answering with the built-in offline"
        " model on this server instead, which costs nothing. It resets tomorrow."
    )
