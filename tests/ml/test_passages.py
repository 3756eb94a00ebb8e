"""Sensitivity and injection flags: from ingestion to the officers' review to what the gate sends."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditEvent
from governance.gate import FLAGGED_WITHHELD, INJECTION_WITHHELD, INJECTION_WRAPPED, Destination, egress_gate
from governance.policy import default_document
from knowledge.models import Document, DocumentStatus
from knowledge.selectors import RetrievedChunk
from knowledge.services import document_process
from portal.assistant import pipeline as assistant
from portal.ml import services
from portal.ml.demo import demo_knowledge_bases_ensure
from portal.ml.models import DocumentSuggestion, FlagKind, FlagStatus, PassageFlag, Purpose
from portal.ml.prompt import UNTRUSTED_NOTICE
from tests.assistant.factories import AssistantProfileFactory
from tests.ml.helpers import trained_model

pytestmark = pytest.mark.django_db
CLOUD = Destination(key="model:1", provider="anthropic")


@pytest.fixture
def labelled_bases(db: None) -> None:
    """The demo's public, confidential and local-only knowledge bases, ingested as the worker would."""
    demo_knowledge_bases_ensure()
    for document in Document.objects.filter(status=DocumentStatus.QUEUED):
        assert document_process(document_id=document.pk, generation=document.generation) == DocumentStatus.READY


@pytest.fixture
def flagged(labelled_bases: None) -> dict[str, PassageFlag]:
    for purpose in (Purpose.SENSITIVITY, Purpose.INJECTION):
        services.model_activate(actor=None, model=trained_model(purpose))
    public = Document.objects.get(knowledge_base__name="Larkspur news and products")
    counts = services.document_scan(document_id=public.pk)
    assert counts["passages"] == public.chunk_count
    flags = {flag.kind: flag for flag in PassageFlag.objects.filter(document=public)}
    return flags


def _chunk_part(flag: PassageFlag, profile: Any) -> Any:
    chunk = flag.chunk
    retrieved = RetrievedChunk(
        chunk_id=chunk.pk,
        document_id=chunk.document_id,
        document_title="News",
        knowledge_base_id=chunk.knowledge_base_id,
        knowledge_base_name="Larkspur news and products",
        classification="public",
        heading_path="",
        page_number=None,
        text=chunk.text,
        score=1.0,
        url="/",
    )
    parts = assistant.build(
        profile=profile, history=[], context=assistant.RetrievedContext(chunks=(retrieved,)), question="Any news?"
    )
    return next(part for part in parts if part.kind == "chunk")


def test_the_scan_flags_the_salary_table_and_the_injection_in_a_public_base(flagged: dict[str, PassageFlag]) -> None:
    sensitivity = flagged[FlagKind.SENSITIVITY]
    assert "pay bands" in sensitivity.chunk.text
    assert sensitivity.base_label == "public" and sensitivity.predicted_label in {"confidential", "local_only"}
    injection = flagged[FlagKind.INJECTION]
    assert "Ignore all previous instructions" in injection.chunk.text
    assert set(flagged) == {FlagKind.SENSITIVITY, FlagKind.INJECTION}  # the product pages are not flagged
    suggestion = DocumentSuggestion.objects.get(document=sensitivity.document)
    assert suggestion.flagged_passages == 1
    assert AuditEvent.objects.filter(action="ml.passages_scanned", object_id=str(sensitivity.document_id)).exists()


def test_a_suggestion_never_lowers_a_label(labelled_bases: None) -> None:
    services.model_activate(actor=None, model=trained_model(Purpose.SENSITIVITY))
    for document in Document.objects.all():
        services.document_scan(document_id=document.pk)
    ranks = services.LABEL_RANK
    for suggestion in DocumentSuggestion.objects.all():
        assert ranks[suggestion.suggested_label] >= ranks[suggestion.base_label]
    assert not PassageFlag.objects.filter(kind=FlagKind.SENSITIVITY, base_label="local_only").exists()


def test_a_flagged_injection_is_wrapped_and_the_manifest_says_so(flagged: dict[str, PassageFlag], sam: Any) -> None:
    part = _chunk_part(flagged[FlagKind.INJECTION], AssistantProfileFactory.create())
    assert part.text.startswith(UNTRUSTED_NOTICE) and part.source["injection"] is True

    gated = egress_gate(
        user=sam,
        conversation_key="t",
        destinations=[CLOUD],
        parts=[part],
        persist_vault=False,
        policy_document=default_document(),
    )

    assert gated.messages[0]["content"].startswith(UNTRUSTED_NOTICE)
    row = gated.manifest["parts"][0]
    assert row["decision"] == "sent" and row["reason"] == INJECTION_WRAPPED and row["source"]["injection"] is True
    assert gated.manifest["flagged_passages"]["injection_wrapped"] == 1


def test_the_policy_may_withhold_flagged_injections(flagged: dict[str, PassageFlag], sam: Any) -> None:
    part = _chunk_part(flagged[FlagKind.INJECTION], AssistantProfileFactory.create())
    document = default_document()
    for rules in document["roles"].values():
        rules["injection_action"] = "withhold"

    gated = egress_gate(
        user=sam,
        conversation_key="t",
        destinations=[CLOUD],
        parts=[part],
        persist_vault=False,
        policy_document=document,
    )

    assert gated.messages == ()
    assert gated.manifest["parts"][0]["reason"] == INJECTION_WITHHELD


def test_unreviewed_sensitive_passages_are_withheld_when_the_policy_says_so_until_reviewed(
    flagged: dict[str, PassageFlag], sam: Any, olivia: Any
) -> None:
    flag = flagged[FlagKind.SENSITIVITY]
    profile = AssistantProfileFactory.create()
    document = default_document()
    gate_kwargs = {"user": sam, "conversation_key": "t", "destinations": [CLOUD], "persist_vault": False}
    # by default it is sent (marked) ...
    part = _chunk_part(flag, profile)
    assert part.source["sensitivity_flag"] == "unreviewed"
    assert egress_gate(parts=[part], policy_document=document, **gate_kwargs).manifest["parts"][0]["decision"] == "sent"
    # ... with the option on, withheld until an officer looks at it
    for rules in document["roles"].values():
        rules["withhold_flagged_passages"] = True
    manifest = egress_gate(parts=[part], policy_document=document, **gate_kwargs).manifest
    assert manifest["parts"][0]["decision"] == "withheld" and manifest["parts"][0]["reason"] == FLAGGED_WITHHELD
    # confirmed: it now carries the higher label, which the default policy withholds from cloud prompts
    services.flag_review(actor=olivia, flag=flag, verdict=FlagStatus.CONFIRMED)
    part = _chunk_part(flag, profile)
    assert part.source["classification"] == flag.predicted_label
    manifest = egress_gate(parts=[part], policy_document=default_document(), **gate_kwargs).manifest
    assert manifest["parts"][0]["decision"] == "withheld"
    assert AuditEvent.objects.filter(action="ml.flag_reviewed", object_id=str(flag.pk)).exists()


def test_a_dismissed_flag_is_sent_as_before_and_becomes_a_training_label(
    flagged: dict[str, PassageFlag], olivia: Any
) -> None:
    from portal.ml.training import sensitivity_dataset

    flag = flagged[FlagKind.SENSITIVITY]
    services.flag_review(actor=olivia, flag=flag, verdict=FlagStatus.DISMISSED)
    part = _chunk_part(flag, AssistantProfileFactory.create())
    assert "sensitivity_flag" not in part.source and part.source["classification"] == "public"
    dataset = sensitivity_dataset()
    assert dataset.sources["officer review"] == 1
    with pytest.raises(Exception, match="already reviewed"):
        services.flag_review(actor=olivia, flag=flag, verdict=FlagStatus.CONFIRMED)


def test_only_officers_review_flags(flagged: dict[str, PassageFlag], alice: Any) -> None:
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        services.flag_review(actor=alice, flag=flagged[FlagKind.INJECTION], verdict=FlagStatus.DISMISSED)
