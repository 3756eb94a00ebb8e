"""The offline model's choice of sentences: question-type cues, the customer record, and the eval command."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from knowledge.selectors import RetrievedChunk
from portal.assistant.models import AssistantProfile
from portal.assistant.pipeline import RetrievedContext, build
from portal.customers.selectors import CustomerContext
from portal.routing import offline
from portal.routing.offline import OFFLINE_LABEL, extractive_answer

REMOTE_WORK = (
    "Employees who work from abroad for a client book trips through the travel desk. "
    "Working hours abroad are recorded in the same timesheet as work at home. "
    "Many teams work from home on two days a week. "
    "Staff may spend at most 20 working days per calendar year outside the country."
)
RULE = "Staff may spend at most 20 working days per calendar year outside the country."
MAILBOX_POLICY = (
    "Messages to a customer are sent from the shared mailbox of the account team. "
    "The e-mail address of every customer is kept in the customer record, never in a personal address book."
)


def _chunk(number: int, title: str, text: str) -> RetrievedChunk:
    return RetrievedChunk(
        chunk_id=number, document_id=number, document_title=title, knowledge_base_id=1, knowledge_base_name="Hand",
        classification="internal", heading_path="", page_number=None, text=text, score=1.0, url="",
    )  # fmt: skip


def _messages(question: str, passages: list[tuple[str, str]], customer: dict[str, str] | None = None) -> Any:
    """The prompt exactly as the assistant builds it (pipeline.build), as chat messages."""
    context = RetrievedContext(
        chunks=tuple(_chunk(number, title, text) for number, (title, text) in enumerate(passages, start=1)),
        customer=CustomerContext(customer_id=7, name="Ada", fields=customer) if customer else None,
    )
    parts = build(profile=AssistantProfile(name="Hand"), history=[], context=context, question=question)
    return [{"role": part.role, "content": part.text} for part in parts]


def _points(answer: str) -> list[str]:
    return [line[2:] for line in answer.splitlines() if line.startswith("- ")]


def _overlap_ranking(question: str, text: str) -> list[str]:
    """The old rule, for comparison: sentences by plain word overlap with the question, earlier first on ties."""
    words = {w.lower() for w in re.findall(r"[\w'-]+", question)} - offline.STOPWORDS
    sentences = re.split(r"(?<=[.!?])\s+", text)
    overlap = [len(words & {w.lower() for w in re.findall(r"[\w'-]+", s)}) for s in sentences]
    return [s for _, s in sorted(zip(overlap, sentences, strict=True), key=lambda pair: -pair[0])]


@pytest.mark.django_db
@pytest.mark.parametrize("embeddings", ["model", "no model"])
def test_a_how_many_question_is_answered_by_the_sentence_with_the_number(
    embeddings: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    question = "How many days may I work from abroad?"
    assert RULE not in _overlap_ranking(question, REMOTE_WORK)[:3]  # word overlap alone left it out
    if embeddings == "no model":  # the model cannot load: the term score and the cues still rank
        monkeypatch.setattr(offline, "_meaning_scores", lambda question, texts: None)

    answer = extractive_answer(_messages(question, [("Remote work guide", REMOTE_WORK)]))

    assert answer.startswith(OFFLINE_LABEL)
    assert _points(answer)[0] == f"{RULE} [1]"
    assert answer.splitlines()[-1] == "Sources: [1] Remote work guide"


@pytest.mark.django_db
def test_a_question_for_a_customer_field_is_answered_from_the_record_first() -> None:
    question = "What is the customer's e-mail address?"
    record = {"name": "Ada Example", "emails": "ada@example.test", "postal_address": "1 Harbour Road", "tier": "Gold"}
    # the old model never read the record: it quoted the mailbox policy
    assert _overlap_ranking(question, MAILBOX_POLICY)[0].startswith("The e-mail address of every customer")

    answer = extractive_answer(_messages(question, [("Mailbox policy", MAILBOX_POLICY)], record))

    points = _points(answer)
    assert points[0] == "Customer emails: ada@example.test (customer record)"
    assert len(points) <= 2 and "1 Harbour Road" not in answer  # the asked field, not the whole record
    assert answer.splitlines()[-1].startswith("Sources: customer record")


def test_without_passages_the_record_still_answers_its_field_and_other_questions_find_nothing() -> None:
    record = {"name": "Ada Example", "phones": "+44 20 0000 0000", "tier": "Gold"}

    answer = extractive_answer(_messages("Which tier is this customer in?", [], record))
    assert _points(answer) == ["Customer tier: Gold (customer record)"]
    assert answer.splitlines()[-1] == "Sources: customer record"

    nothing = extractive_answer(_messages("How long are receipts kept?", [], record))
    assert nothing == f"{OFFLINE_LABEL} {offline.NO_PASSAGES}"


@pytest.mark.django_db
def test_a_sentence_that_continues_another_keeps_the_one_before_it() -> None:
    text = (
        "Parking permits are issued by the facilities team for one year at a time. "
        "They cost 120 euros and are renewed every January."
    )
    answer = extractive_answer(_messages("How much does a parking permit cost?", [("Parking", text)]))

    assert _points(answer)[0] == f"{text} [1]"  # "They cost ..." alone would not say what costs 120 euros


# ---- the eval command -------------------------------------------------------------------------------------
def _figures(**options: Any) -> dict[str, Any]:
    out = io.StringIO()
    call_command("eval_offline", json=True, stdout=out, stderr=io.StringIO(), **options)
    figures: dict[str, Any] = json.loads(out.getvalue())
    return figures


@pytest.mark.django_db
def test_eval_offline_judges_answers_by_the_key_fact_rule_on_a_small_folder(tmp_path: Path) -> None:
    (tmp_path / "remote_work.md").write_text(f"# Remote work\n\n{REMOTE_WORK}\n", encoding="utf-8")
    truths = [
        {"question": "How many days may I work from abroad?", "truth": f"{RULE} [remote_work.md]"},
        {"question": "Where are trips booked?", "truth": "Through the ticket office downstairs. [remote_work.md]"},
    ]
    (tmp_path / "ground_truth.jsonl").write_text("".join(json.dumps(t) + "\n" for t in truths), encoding="utf-8")

    figures = _figures(qa=tmp_path)

    assert (figures["questions"], figures["passages_per_question"]) == (2, 6)
    assert figures["offline_key_fact_share"] == 0.5  # the rule's 20 is quoted; the invented ticket office is not
    assert figures["offline_source_cited_share"] == 1.0
    assert figures["offline_answer_ms_p50"] > 0


def test_the_key_fact_rule_needs_every_number_or_most_content_words() -> None:
    from portal.routing.management.commands.eval_offline import contains_key_fact

    truth = "The deductible is $1,500 for individuals and $3,000 for families. [plan.pdf#page=3]"
    assert contains_key_fact(truth, "Individuals pay 1500 and families 3,000.00 before cover starts.")[0]
    assert not contains_key_fact(truth, "The deductible is $1,500 for individuals and families.")[0]
    words_only = "Receipts are kept by the finance office for ten years. [guide.pdf]"
    assert contains_key_fact(words_only, "The finance office keeps receipts ten years.")[0]
    assert not contains_key_fact(words_only, "Receipts go to the finance office.")[0]  # 3 of 6 content words


@pytest.mark.external_data
@pytest.mark.django_db
def test_eval_offline_on_contoso_prints_every_figure(shared_data: Path) -> None:
    figures = _figures(qa=shared_data / "business_kb" / "contoso", limit_queries=3)

    assert figures["questions"] == 3 and figures["chunks"] > 100
    for name in ("offline_key_fact_share", "offline_source_cited_share", "offline_key_fact_in_passages_share"):
        assert 0 <= figures[name] <= 1
