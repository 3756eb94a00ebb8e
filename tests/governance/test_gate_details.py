"""The gate's smaller promises: its refusal messages, its log lines, a long conversation key, a failed audit."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from governance.gate import (
    ERROR_NOT_SEALED,
    ERROR_POLICY_UNAVAILABLE,
    EgressBlocked,
    GatedPrompt,
    PassThroughRestorer,
    PromptPart,
    egress_gate,
    preview_required,
    verify_sealed,
)
from governance.models import PolicyVersion
from tests.governance.conftest import CLOUD, LOCAL
from tests.governance.helpers import blocked_and_audited

pytestmark = pytest.mark.django_db


def test_the_seal_refusals_say_why(sam: Any) -> None:
    gated = egress_gate(user=sam, conversation_key="seal", destinations=[LOCAL], parts=[PromptPart("question", "Hi")])
    with pytest.raises(PermissionError) as wrong_destination:
        verify_sealed(gated, CLOUD.key)
    assert str(wrong_destination.value) == f"This prompt was not cleared for {CLOUD.key}; it is not sent."
    unsealed = GatedPrompt(messages=gated.messages, manifest=gated.manifest, destinations=(CLOUD.key,), seal="0" * 64)
    with pytest.raises(PermissionError) as not_sealed:
        verify_sealed(unsealed, CLOUD.key)
    assert str(not_sealed.value) == ERROR_NOT_SEALED


def test_a_prompt_built_without_the_gate_restores_nothing() -> None:
    built = GatedPrompt(messages=({"role": "user", "content": "<PERSON_1>"},), manifest={}, destinations=(), seal="")
    restorer = built.restorer()
    assert isinstance(restorer, PassThroughRestorer)
    assert restorer.feed("<PERSON_1> said hi") + restorer.finish() == "<PERSON_1> said hi"


def test_a_long_conversation_key_is_cut_to_the_audit_columns_length(sam: Any) -> None:
    key = "conversation-" + "k" * 150
    with blocked_and_audited(sam, key):  # the helper expects key[:100] as the event's object id
        egress_gate(user=sam, conversation_key=key, destinations=[CLOUD], parts=[PromptPart("attachment", "x")])


def test_a_refusal_that_cannot_be_audited_still_refuses_and_says_so_in_the_log(
    sam: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def audit_down(**kwargs: Any) -> None:
        raise ConnectionAbortedError("audit table unavailable")

    monkeypatch.setattr("audit.services.audit", audit_down)
    with pytest.raises(EgressBlocked), caplog.at_level(logging.ERROR, logger="governance.gate"):
        egress_gate(user=sam, conversation_key="k", destinations=[CLOUD], parts=[PromptPart("attachment", "x")])
    assert "could not audit a blocked prompt (ConnectionAbortedError)" in caplog.messages


def test_without_a_policy_the_preview_is_required_and_the_lookup_failure_is_logged(
    sam: Any, caplog: pytest.LogCaptureFixture
) -> None:
    PolicyVersion.objects.all().delete()
    with caplog.at_level(logging.ERROR, logger="governance.gate"):
        assert preview_required(sam) is True
        with blocked_and_audited(sam, "no-policy") as blocked:
            egress_gate(
                user=sam, conversation_key="no-policy", destinations=[LOCAL], parts=[PromptPart("question", "x")]
            )
    assert str(blocked.value) == ERROR_POLICY_UNAVAILABLE
    assert "preview_required: policy lookup failed" in caplog.messages
    assert "egress gate: policy lookup failed" in caplog.messages


def test_a_refusal_without_a_user_is_audited_as_the_system(db: None) -> None:
    """Background work (memory learning) may ask with no signed-in user: its refusals are audited too."""
    with blocked_and_audited(None, "background"):
        egress_gate(
            user=None, conversation_key="background", destinations=[CLOUD], parts=[PromptPart("attachment", "")]
        )
