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


# ---- the manifest, whole --------------------------------------------------------------------------------
CARD, SSN = "4111 1111 1111 1111", "123-45-6789"


def test_the_manifest_records_every_part_and_decision(sam: Any, publish: Any) -> None:
    from governance.detection import NER_ABSENT
    from tests.governance.factories import policy_with

    version = publish(policy_with({"Staff": {"withheld_memory_scopes": ["customer"]}}))
    parts = [
        PromptPart("instructions", "Answer briefly.", role="system"),
        PromptPart("chunk", f"Cards: {CARD} and {SSN}.", source={"citation": 1, "classification": "internal"}),
        PromptPart("chunk", "Board minutes.", source={"citation": 2, "classification": "confidential"}),
        PromptPart("memory", "Prefers calls.", source={"memory_id": 3, "scope": "customer"}),
        PromptPart("customer", "Tier gold.", source={"customer_id": 4, "field": "tier", "title": "x" * 100}),
        PromptPart("question", "Mail a@example.org and b@example.org, then a@example.org again."),
    ]
    gated = egress_gate(user=sam, conversation_key="manifest", destinations=[LOCAL, CLOUD], parts=parts)
    nothing_done: dict[str, dict[str, Any]] = {"pseudonymized": {}, "abstracted": {}, "redacted": {}}

    assert gated.destinations == (LOCAL.key, CLOUD.key)  # the local destination first does not end the walk
    assert gated.manifest == {
        "gate": "policy",
        "policy_version": version.pk,
        "policy_version_number": version.number,
        "policy_source": "published",
        "roles": ["Staff"],
        "parts": [
            {
                "kind": "instructions",
                "source": {},
                "decision": "sent",
                "reason": "",
                "chars": 15,
                "findings": {},
                **nothing_done,
            },  # fmt: skip
            {
                "kind": "chunk",
                "source": {"citation": 1, "classification": "internal"},
                "decision": "withheld",
                "reason": "contains NATIONAL_ID, PAYMENT_CARD, blocked by policy",
                "chars": len(parts[1].text),
                "findings": {"NATIONAL_ID": 1, "PAYMENT_CARD": 1},
                **nothing_done,
            },
            {
                "kind": "chunk",
                "source": {"citation": 2, "classification": "confidential"},
                "decision": "withheld",
                "reason": "knowledge labelled confidential may not go to cloud models",
                "chars": 14,
                "findings": {},
                **nothing_done,
            },
            {
                "kind": "memory",
                "source": {"memory_id": 3, "scope": "customer"},
                "decision": "withheld",
                "reason": "memory scope customer stays local",
                "chars": 14,
                "findings": {},
                **nothing_done,
            },
            {
                "kind": "customer",
                "source": {"customer_id": 4, "field": "tier"},  # "title" is no id or label: left out
                "decision": "sent",
                "reason": "",
                "chars": 10,
                "findings": {},
                **nothing_done,
            },
            {
                "kind": "question",
                "source": {},
                "decision": "sent",
                "reason": "",
                "chars": len(parts[5].text),
                "findings": {"EMAIL": 3},
                "pseudonymized": {"EMAIL": 3},  # what the manifest says was done, part by part
                "abstracted": {},
                "redacted": {},
            },
        ],
        "findings": {"EMAIL": 3, "NATIONAL_ID": 1, "PAYMENT_CARD": 1},
        "detection_layers": {"patterns": 5, "ner": NER_ABSENT},
        "actions": {"EMAIL": "pseudonymize", "NATIONAL_ID": "block", "PAYMENT_CARD": "block"},
        "sensitive": False,
        "pseudonymized": {"EMAIL": 3},
        "abstracted": {},
        "redacted": {},
        "placeholders": ["<EMAIL_1>", "<EMAIL_2>"],
        "withheld": 3,
        "flagged_passages": {"injection_wrapped": 0, "injection_withheld": 0, "sensitivity_withheld": 0},
        "destinations": [LOCAL.key, CLOUD.key],
        "destinations_refused": [],
        "local_only": False,
        "preview_before_send": False,
    }
    assert [message["content"] for message in gated.messages] == [
        "Answer briefly.",
        "Tier gold.",
        "Mail <EMAIL_1> and <EMAIL_2>, then <EMAIL_1> again.",
    ]


def test_a_draft_policy_and_every_reason_to_stay_local_are_named(sam: Any, olivia: Any) -> None:
    from governance.policy import default_document

    parts = [
        PromptPart("chunk", "Merger: Bluebird.", source={"classification": "local_only"}),
        PromptPart("customer", "Notes: difficult.", source={"customer_id": 4, "field": "notes", "n": "y" * 100}),
        PromptPart("question", f"Card {CARD}, SSN {SSN}?"),
    ]
    draft = default_document()
    draft["roles"]["Staff"]["withheld_customer_fields"] = ["notes"]
    gated = egress_gate(
        user=sam, conversation_key="draft", destinations=[CLOUD, LOCAL], parts=parts, policy_document=draft
    )
    manifest = gated.manifest
    assert (manifest["policy_source"], manifest["policy_version"]) == ("draft", None)
    assert manifest["local_only"] is True and gated.destinations == (LOCAL.key,)
    assert [part["reason"] for part in manifest["parts"]] == [
        "knowledge labelled local_only: local only",
        "customer field notes stays local",
        "local model only: nothing leaves the server",
    ]
    assert manifest["parts"][1]["source"] == {"customer_id": 4, "field": "notes"}
    assert manifest["destinations_refused"] == [
        {
            "destination": CLOUD.key,
            "reason": "your question contains NATIONAL_ID, PAYMENT_CARD, which your role's policy blocks from "
            "cloud models; local-only knowledge can only be answered by the local model",
        }
    ]


def test_a_source_value_of_up_to_100_characters_is_kept_in_the_manifest(sam: Any) -> None:
    source = {"kind": "k" * 100, "scope": "s" * 101}
    gated = egress_gate(
        user=sam, conversation_key="source", destinations=[LOCAL], parts=[PromptPart("memory", "x", source=source)]
    )
    assert gated.manifest["parts"][0]["source"] == {"kind": "k" * 100}
