"""The manifest tells the truth: for every part it calls pseudonymized, abstracted or redacted, none of the values
found in that part is anywhere in what the provider received (recorded by the fake provider, over HTTP).

The prompts go through the real pipeline (a conversation about a customer, knowledge passages, the history
of an earlier answer with the values restored in it), under several policies. The same value in several
parts, in a passage's title, or only in a withheld part must not slip through either.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from typing import Any

import pytest

from governance import classes as dc
from governance import gate, known_entities
from governance.detection import detect_parts
from governance.services import policy_publish
from portal.assistant import services
from portal.assistant.models import MessageStatus
from tests.assistant.factories import AssistantProfileFactory, knowledge_base_with
from tests.assistant.helpers import run_answer, stored_answer
from tests.customers.factories import CustomerFactory
from tests.governance.factories import policy_with

pytestmark = pytest.mark.django_db

NAME = "Wilhelmina Castellanos-Jäger"
EMAIL = "w.castellanos@fjordmail.example"
PHONE = "+44 20 7946 0958"
ORGANISATION = "Quillfeather Analytics"
ADDRESS = "14 Larkspur Avenue\nBristol BS1 4DJ"
APPLIED = ("pseudonymized", "abstracted", "redacted")
POLICIES: dict[str, tuple[dict[str, Any] | None, bool]] = {
    "default": (None, False),  # the policy of a new install
    "redact people": (policy_with({"Staff": {"classes": {dc.PERSON: dc.REDACT, dc.EMAIL: dc.REDACT}}}), False),
    "abstract": (
        policy_with({"Staff": {"classes": dict.fromkeys((dc.PERSON, dc.PHONE, dc.POSTAL_ADDRESS), dc.ABSTRACT)}}),
        False,
    ),
    "sensitive profile": (None, True),
}
QUESTIONS = [
    f"Draft a note to {NAME} at {EMAIL} about the refund; call {PHONE} if needed.",
    f"{NAME.upper()} of {ORGANISATION} moved to {ADDRESS.replace(chr(10), ', ')}: update the letter.",
    "Thanks. And what does the handbook say about holidays for her?",
    f"Thanks, {NAME.split()[0]}: tell her the letter goes out today.",  # the given name alone, in context
]


def _normalised(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join("".join(ch for ch in folded if unicodedata.category(ch) != "Cf").split())


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


@pytest.fixture
def gate_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[Any], gate.GatedPrompt]]:
    """Every (parts, gated prompt) the real gate produced in the test."""
    calls: list[tuple[list[Any], gate.GatedPrompt]] = []
    real = gate.egress_gate

    def recording(**kwargs: Any) -> gate.GatedPrompt:
        gated = real(**kwargs)
        calls.append((list(kwargs["parts"]), gated))
        return gated

    monkeypatch.setattr(gate, "egress_gate", recording)
    return calls


def manifest_lies(parts: list[Any], manifest: dict[str, Any], sent: str) -> list[tuple[str, str, str]]:
    """(part kind, class, value) of every value found in a part the manifest calls masked that was sent anyway,
    and of every count the manifest gets wrong."""
    lies = []
    sent = _normalised(sent)
    masking = {c for c, action in manifest["actions"].items() if action in (dc.PSEUDONYMIZE, dc.ABSTRACT, dc.REDACT)}
    # the gate's own detection: the prompt's parts together, about the customers among them (a given name
    # alone is a finding where its person is in context)
    detected = detect_parts([part.text for part in parts], context=gate.detection_context(parts))
    for part, row, findings in zip(parts, manifest["parts"], detected, strict=True):
        masked = {data_class for name in APPLIED for data_class in row[name]}
        found = [f for f in findings if f.data_class in masked]
        claimed = sum((Counter(row[name]) for name in APPLIED), Counter())
        expected = Counter(f.data_class for f in findings if f.data_class in masking)
        if row["decision"] == "sent" and not manifest["local_only"] and claimed != expected:
            lies.append((part.kind, "counts", json.dumps(claimed)))  # the counts are exact, class by class
        for finding in found:
            value = _normalised(part.text[finding.start : finding.end])
            if re.search(r"(?<!\w)" + re.escape(value) + r"(?!\w)", sent):  # a given name, not inside a word
                lies.append((part.kind, finding.data_class, part.text[finding.start : finding.end]))
        if row["decision"] == "withheld" and masked:
            lies.append((part.kind, "withheld", "yet masked"))
    lies += [("manifest", "placeholder", p) for p in manifest["placeholders"] if p.casefold() not in sent]
    return lies


@pytest.mark.parametrize("policy_name", list(POLICIES))
def test_no_value_of_a_part_the_manifest_calls_masked_reaches_the_provider(
    policy_name: str, sam: Any, olivia: Any, fake_model: Any, fake_provider: Any, gate_calls: list[Any]
) -> None:
    document, sensitive = POLICIES[policy_name]
    if document is not None:
        policy_publish(actor=olivia, reason="test", document=document)
    customer = CustomerFactory.create(name=NAME, organisation=ORGANISATION, emails=[EMAIL], phones=[PHONE],
                               postal_address=ADDRESS, tier="key", notes=f"{NAME} prefers e-mail.")  # fmt: skip
    known_entities.invalidate()
    handbook = knowledge_base_with(
        name="Handbook",
        passages=[
            (f"Letter from {NAME}", f"{NAME} asked for her refund; write to {EMAIL}. Refunds take 14 days.", 1),
            ("Holidays", f"Staff take 25 days of holidays; {ORGANISATION} staff ask their team lead.", 2),
        ],
    )
    profile = AssistantProfileFactory.create(name="Desk", usable_by=["Staff"], knowledge_bases=[handbook],
                                      sensitive=sensitive)  # fmt: skip
    conversation = services.conversation_create(actor=sam, profile=profile, customer_id=customer.pk)

    masked: Counter[str] = Counter()
    for question in QUESTIONS:
        fake_provider.reset()
        # The model echoes what it got, so the restored answer (the next question's history) holds the values.
        fake_provider.answer_with(lambda body: "Echo: " + body["messages"][-1]["content"])
        answer = stored_answer(run_answer(user=sam, conversation=conversation, question=question))
        assert answer.status == MessageStatus.COMPLETE, answer.error
        parts, gated = gate_calls[-1]
        assert answer.manifest == gated.manifest
        (request,) = fake_provider.requests
        assert manifest_lies(parts, gated.manifest, " ".join(_strings(request.body))) == []
        for row in gated.manifest["parts"]:
            for name in APPLIED:
                masked.update(row[name])
    assert masked[dc.PERSON] >= 3 and masked[dc.CUSTOMER_FIELD] >= 1  # the check had values to check
    # the last question's body: not even the given name alone
    bodies = _normalised(json.dumps([r.body for r in fake_provider.requests], ensure_ascii=False))
    assert _normalised(NAME) not in bodies and not re.search(r"\bwilhelmina\b", bodies)


def test_the_check_catches_a_manifest_that_lies(sam: Any, fake_model: Any) -> None:
    """Not vacuous: the same check fails when what was sent still holds a value the manifest calls masked."""
    CustomerFactory.create(name=NAME, emails=[EMAIL])
    known_entities.invalidate()
    parts = [gate.PromptPart("question", f"Write to {NAME} at {EMAIL}.")]
    gated = gate.egress_gate(user=sam, conversation_key="lying", destinations=[fake_model.destination()], parts=parts)
    assert gated.manifest["parts"][0]["pseudonymized"] == {dc.EMAIL: 1, dc.PERSON: 1}

    assert manifest_lies(parts, gated.manifest, gated.messages[0]["content"]) == []
    leaked = gated.messages[0]["content"].replace("<PERSON_1>", NAME.lower())
    assert manifest_lies(parts, gated.manifest, leaked) == [
        ("question", dc.PERSON, NAME),
        ("manifest", "placeholder", "<PERSON_1>"),
    ]
    miscounted = {**gated.manifest, "parts": [{**gated.manifest["parts"][0], "pseudonymized": {dc.EMAIL: 1}}]}
    assert ("question", "counts", '{"EMAIL": 1}') in manifest_lies(parts, miscounted, gated.messages[0]["content"])
