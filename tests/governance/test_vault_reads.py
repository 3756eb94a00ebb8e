"""A prompt that hands out no placeholder reads the vault without locking it; one that does, locks it."""

from __future__ import annotations

from typing import Any

import pytest

from governance.gate import PromptPart, egress_gate
from governance.models import ConversationVault
from tests.governance.conftest import CLOUD

pytestmark = pytest.mark.django_db


def _ask(user: Any, text: str, key: str = "vault-reads") -> Any:
    return egress_gate(user=user, conversation_key=key, destinations=[CLOUD], parts=[PromptPart("question", text)])


def test_a_prompt_without_personal_values_takes_no_lock_and_writes_no_vault(
    sam: Any, django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(20) as captured:
        gated = _ask(sam, "What do the refund rules say about returned goods?")
    sql = " ".join(query["sql"] for query in captured.captured_queries)
    assert "FOR UPDATE" not in sql
    assert "governance_conversationvault" in sql  # read, for the restorer
    assert not ConversationVault.objects.filter(conversation_key="vault-reads").exists()
    assert gated.messages[0]["content"] == "What do the refund rules say about returned goods?"


def test_a_value_to_pseudonymize_still_locks_and_saves_the_vault(sam: Any, django_assert_max_num_queries: Any) -> None:
    with django_assert_max_num_queries(30) as captured:
        gated = _ask(sam, "Please write to jo.smith@example.org about the refund.")
    assert "jo.smith@example.org" not in gated.messages[0]["content"]
    assert any("FOR UPDATE" in query["sql"] for query in captured.captured_queries)
    assert ConversationVault.objects.filter(conversation_key="vault-reads").exists()


def test_a_later_turn_without_values_still_restores_the_earlier_placeholders(sam: Any) -> None:
    first = _ask(sam, "Please write to jo.smith@example.org about the refund.")
    sent = first.messages[0]["content"]
    later = _ask(sam, "And what did I ask before?")
    restorer = later.restorer()
    assert restorer.feed(sent) + restorer.finish() == "Please write to jo.smith@example.org about the refund."
