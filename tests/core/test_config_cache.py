"""The configuration kept per process (portal/core/config_cache.py): a change committed by any other
connection (another web process, the site admin, plain SQL) is seen at the very next read."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction

from governance.gate import EgressBlocked, egress_gate
from governance.policy import default_document
from governance.selectors import policy_in_force
from portal.core.config_cache import config_forget, config_generation, config_generation_pinned
from portal.routing.selectors import catalog_enabled, task_tiers
from tests.database import in_another_thread, other_connection_sql
from tests.governance.conftest import CLOUD
from tests.routing.factories import CatalogModelFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _nothing_kept() -> Iterator[None]:
    config_forget()
    yield
    config_forget()


def test_a_catalog_change_by_another_connection_is_seen_at_the_next_read() -> None:
    model = CatalogModelFactory.create(display_name="Kept model")
    assert [m.display_name for m in catalog_enabled()] == ["Kept model"]
    other_connection_sql("UPDATE routing_catalogmodel SET display_name = 'Renamed elsewhere' WHERE id = %s",
                          [model.pk])  # fmt: skip
    assert [m.display_name for m in catalog_enabled()] == ["Renamed elsewhere"]
    other_connection_sql("UPDATE routing_catalogmodel SET enabled = false WHERE id = %s", [model.pk])
    assert catalog_enabled() == []


def test_an_unchanged_configuration_costs_one_small_query(django_assert_num_queries: Any) -> None:
    CatalogModelFactory.create()
    catalog_enabled(), task_tiers()
    with django_assert_num_queries(2) as captured:  # the generation, once per read; nothing else
        catalog_enabled(), task_tiers()
    assert all("core_configgeneration" in query["sql"] for query in captured.captured_queries)


def test_inside_a_pinned_phase_the_generation_is_read_once(django_assert_num_queries: Any) -> None:
    catalog_enabled(), task_tiers()
    with config_generation_pinned(), django_assert_num_queries(1):
        catalog_enabled(), task_tiers(), catalog_enabled()


def test_each_caller_gets_its_own_copies() -> None:
    CatalogModelFactory.create(display_name="Original")
    catalog_enabled()[0].display_name = "Changed by a caller"
    tiers = task_tiers()
    tiers["routine"] = "changed by a caller"
    assert catalog_enabled()[0].display_name == "Original"
    assert task_tiers()["routine"] != "changed by a caller"


def test_a_task_tier_changed_in_another_process_applies_to_the_next_route() -> None:
    from portal.routing.models import TaskTier

    before = task_tiers()["routine"]
    after = "premium" if before != "premium" else "standard"
    in_another_thread(lambda: TaskTier.objects.update_or_create(task_type="routine", defaults={"tier": after}))
    assert task_tiers()["routine"] == after


def test_a_rolled_back_write_leaves_nothing_a_later_change_would_be_mistaken_for() -> None:
    model = CatalogModelFactory.create(display_name="Committed")
    with pytest.raises(RuntimeError), transaction.atomic():
        _update_name(model.pk, "Rolled back")
        assert [m.display_name for m in catalog_enabled()] == ["Rolled back"]  # kept under that generation
        raise RuntimeError("roll back")
    assert [m.display_name for m in catalog_enabled()] == ["Committed"]
    # the next committed write gets a number the rolled-back one never had
    other_connection_sql("UPDATE routing_catalogmodel SET display_name = 'Later' WHERE id = %s", [model.pk])
    assert [m.display_name for m in catalog_enabled()] == ["Later"]


def _update_name(pk: int, name: str) -> None:
    from portal.routing.models import CatalogModel

    CatalogModel.objects.filter(pk=pk).update(display_name=name)


def test_every_write_moves_the_generation_even_plain_sql() -> None:
    before = config_generation()
    other_connection_sql("UPDATE routing_tasktier SET tier = tier")
    assert config_generation() > before


def test_a_policy_published_in_another_process_is_applied_by_the_gate_at_the_next_prompt(olivia: Any) -> None:
    from governance.services import policy_publish

    parts = _prompt_with_an_email()
    first = egress_gate(user=olivia, conversation_key="cache-test", destinations=[CLOUD], parts=parts)
    assert first.manifest["policy_version"] == policy_in_force().pk

    document = default_document()
    for rules in document["roles"].values():
        rules["providers"]["blocked_providers"] = ["openai"]
    published: list[Any] = []
    in_another_thread(lambda: published.append(policy_publish(actor=None, reason="block openai", document=document)))

    assert policy_in_force().pk == published[0].pk
    with pytest.raises(EgressBlocked, match="provider openai is blocked"):
        egress_gate(user=olivia, conversation_key="cache-test", destinations=[CLOUD], parts=parts)


def _prompt_with_an_email() -> list[Any]:
    from governance.gate import PromptPart

    return [PromptPart(kind="question", text="Please write to jo@example.org about the refund.", source={})]


def test_the_model_names_in_an_answers_details_follow_a_rename_elsewhere() -> None:
    from portal.routing.selectors import model_display_names

    model = CatalogModelFactory.create(display_name="Before", enabled=False)  # disabled models keep their name
    assert model_display_names(keys=[model.key, "model:0", "offline"])[model.key] == "Before"
    other_connection_sql("UPDATE routing_catalogmodel SET display_name = 'After' WHERE id = %s", [model.pk])
    names = model_display_names(keys=[model.key, "model:0"])
    assert names == {model.key: "After"}


def test_a_budget_set_in_another_process_applies_to_the_next_route(sam: Any, settings: Any) -> None:
    from portal.routing.models import Budget
    from portal.routing.services import route_decide

    settings.ROUTING_OFFLINE_FALLBACK = True
    CatalogModelFactory.create(tier="standard")
    assert route_decide(user=sam, task_type="draft", question="x").budget_note == ""
    in_another_thread(lambda: Budget.objects.create(user_id=sam.pk, limit=Decimal("0"), action=Budget.Action.REFUSE))
    decision = route_decide(user=sam, task_type="draft", question="x")
    assert decision.reason.endswith("over budget")


def test_a_renamed_role_counts_the_spending_under_its_new_name(sam: Any) -> None:
    from django.contrib.auth.models import Group

    from portal.routing.models import Budget
    from portal.routing.services import route_decide
    from tests.routing.factories import UsageFactory

    CatalogModelFactory.create(tier="standard")
    CatalogModelFactory.create(tier="economy")
    staff = Group.objects.get(name="Staff")
    Budget.objects.create(role=staff, limit=Decimal("1.00"), action=Budget.Action.DOWNGRADE)
    UsageFactory.create(roles=["Staff (renamed)"], cost=Decimal("2.00"))
    assert route_decide(user=sam, task_type="draft", question="x").budget_note == ""
    in_another_thread(lambda: Group.objects.filter(pk=staff.pk).update(name="Staff (renamed)"))
    assert route_decide(user=sam, task_type="draft", question="x").budget_note != ""
