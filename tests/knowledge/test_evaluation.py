"""The figures eval_retrieval prints, worked out by hand: the metrics alone, then `--beir` end to end."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from knowledge.bench import evaluation
from knowledge.models import KnowledgeBase

BEIR_TINY = Path(__file__).parent / "data" / "beir_tiny"

# Ranked documents and graded judgements used by the metric tests below:
RANKED = ["d3", "d1", "d9", "d2"]
RELEVANT = {"d1": 2, "d2": 1, "d4": 1}


# ---- nDCG ---------------------------------------------------------------------------------------------
def test_ndcg_weighs_each_hit_by_its_grade_and_rank_against_the_ideal_order() -> None:
    # gains 2^grade - 1: d1 (grade 2) at rank 2 -> 3 / log2(3); d2 (grade 1) at rank 4 -> 1 / log2(5)
    dcg = 3 / math.log2(3) + 1 / math.log2(5)
    # ideal: grades 2, 1, 1 at ranks 1, 2, 3
    idcg = 3 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert evaluation.ndcg_at(RANKED, RELEVANT, 10) == pytest.approx(dcg / idcg)
    assert evaluation.ndcg_at(RANKED, RELEVANT, 10) == pytest.approx(0.56246, abs=1e-5)


def test_ndcg_at_k_looks_only_at_the_first_k_results_and_the_best_k_grades() -> None:
    # top 2: only d1 counts; the ideal top 2 holds grades 2 and 1
    expected = (3 / math.log2(3)) / (3 / math.log2(2) + 1 / math.log2(3))
    assert evaluation.ndcg_at(RANKED, RELEVANT, 2) == pytest.approx(expected)
    assert evaluation.ndcg_at(RANKED, RELEVANT, 1) == 0.0  # d3 is not relevant


def test_ndcg_is_one_for_the_ideal_order_and_zero_without_relevant_documents() -> None:
    assert evaluation.ndcg_at(["d1", "d2", "d4"], RELEVANT, 10) == pytest.approx(1.0)
    assert evaluation.ndcg_at(["d1", "d4", "d2"], RELEVANT, 10) == pytest.approx(1.0)  # equal grades tie
    assert evaluation.ndcg_at(["d2", "d1"], RELEVANT, 10) < evaluation.ndcg_at(["d1", "d2"], RELEVANT, 10)
    assert evaluation.ndcg_at(["d7", "d8"], RELEVANT, 10) == 0.0
    assert evaluation.ndcg_at(["d1"], {}, 10) == 0.0
    assert evaluation.ndcg_at(["d1"], {"d1": 0}, 10) == 0.0  # judged not relevant


# ---- recall -------------------------------------------------------------------------------------------
def test_recall_counts_relevant_documents_found_within_k() -> None:
    assert evaluation.recall_at(RANKED, RELEVANT, 100) == pytest.approx(2 / 3)  # d1 and d2 of d1, d2, d4
    assert evaluation.recall_at(RANKED, RELEVANT, 2) == pytest.approx(1 / 3)  # d1 only
    assert evaluation.recall_at(RANKED, RELEVANT, 1) == 0.0


def test_recall_ignores_documents_judged_not_relevant() -> None:
    assert evaluation.recall_at(["d5"], {"d1": 1, "d5": 0}, 100) == 0.0
    assert evaluation.recall_at(["d1", "d5"], {"d1": 1, "d5": 0}, 100) == 1.0
    assert evaluation.recall_at(["d1"], {"d5": 0}, 100) == 0.0  # nothing relevant to find


# ---- MRR ----------------------------------------------------------------------------------------------
def test_mrr_is_the_inverse_rank_of_the_first_relevant_result_within_k() -> None:
    assert evaluation.mrr_at(RANKED, RELEVANT, 10) == 0.5  # d1 at rank 2
    assert evaluation.mrr_at(["d9", "d8", "d2"], RELEVANT, 10) == pytest.approx(1 / 3)
    assert evaluation.mrr_at(RANKED, RELEVANT, 1) == 0.0
    assert evaluation.mrr_at(["d5", "d1"], {"d5": 0, "d1": 1}, 10) == 0.5  # a grade-0 document is no hit


# ---- from chunks to documents, and the latency percentiles --------------------------------------------
def test_documents_are_ranked_by_their_best_chunk() -> None:
    chunks = [(11, 0.9), (12, 0.8), (21, 0.7), (99, 0.65), (13, 0.6), (31, 0.5)]
    owners = {11: "a", 12: "a", 21: "b", 13: "a", 31: "c"}  # chunk 99 belongs to no evaluated document
    assert evaluation.documents_ranked(chunks, owners) == ["a", "b", "c"]


def test_percentiles_interpolate_and_an_empty_list_gives_zero() -> None:
    assert evaluation.percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert evaluation.percentile([10.0, 20.0], 95) == pytest.approx(19.5)
    assert evaluation.percentile([], 95) == 0.0


# ---- eval_retrieval --beir on a data set worked out by hand (tests/knowledge/data/beir_tiny) -----------
# Lexical (BM25) finds only the documents sharing a word with the query: q1 -> [d2], q2 -> [d3], q3 -> [d4].
LEXICAL_NDCG = (1 + 3 / (3 + 1 / math.log2(3)) + 0) / 3  # q1 ideal; q2 finds d3 (grade 2), not d6; q3 none
LEXICAL_RECALL = (1 + 1 / 2 + 0) / 3
LEXICAL_MRR = (1 + 1 + 0) / 3
# The vector leg ranks all six documents (fewer than the 200 candidates), so recall is 1. The queries' own
# documents come first (q1 -> d2, q2 -> d3, q3 -> d4); where the semantically unrelated relevant documents
# (d6 for q2, d5 for q3) land among ranks 2 to 6 is the model's business, so nDCG and MRR have bounds.
VECTOR_NDCG_RANGE = (
    (1 + (3 + 1 / math.log2(7)) / (3 + 1 / math.log2(3)) + 1 / math.log2(7)) / 3,  # both at rank 6
    (1 + 1 + 1 / math.log2(3)) / 3,  # both at rank 2
)
VECTOR_MRR_RANGE = ((1 + 1 + 1 / 6) / 3, (1 + 1 + 1 / 2) / 3)


def _eval_beir(*args: Any, **options: Any) -> dict[str, Any]:
    out = io.StringIO()
    call_command("eval_retrieval", *args, beir=BEIR_TINY, json=True, stdout=out, **options)
    return dict(json.loads(out.getvalue()))


def _rounded(value: float) -> float:
    return round(value, 4)  # the command prints four decimals


@pytest.mark.django_db
def test_eval_retrieval_beir_prints_the_hand_worked_figures() -> None:
    figures = _eval_beir()

    assert figures["dataset"] == "beir_tiny"
    # q4 has no judgements and q9 is not asked: three queries are evaluated, over six one-chunk documents
    assert (figures["documents"], figures["chunks"], figures["queries"]) == (6, 6, 3)
    assert figures["lexical_ndcg@10"] == _rounded(LEXICAL_NDCG) == 0.6087
    assert figures["lexical_recall@100"] == _rounded(LEXICAL_RECALL) == 0.5
    assert figures["lexical_mrr@10"] == _rounded(LEXICAL_MRR) == 0.6667
    for mode in ("vector", "rrf", "hybrid"):
        assert figures[f"{mode}_recall@100"] == 1.0, mode
        low, high = VECTOR_NDCG_RANGE
        assert _rounded(low) <= figures[f"{mode}_ndcg@10"] <= _rounded(high), mode
        low, high = VECTOR_MRR_RANGE
        assert _rounded(low) <= figures[f"{mode}_mrr@10"] <= _rounded(high), mode
    assert figures["all_modes_query_p95_ms"] >= figures["all_modes_query_p50_ms"] > 0
    backend = next(key for key in figures if key.startswith("encode_rate_"))
    assert figures[backend] > 0
    assert not KnowledgeBase.objects.filter(name="eval: beir_tiny").exists()  # dropped without --keep


@pytest.mark.django_db
def test_eval_retrieval_beir_limits_queries_keeps_the_base_on_request_and_prints_name_value_lines() -> None:
    figures = _eval_beir(limit_queries=1, keep=True)
    assert figures["queries"] == 1
    assert figures["lexical_ndcg@10"] == figures["lexical_recall@100"] == figures["lexical_mrr@10"] == 1.0  # q1
    assert KnowledgeBase.objects.get(name="eval: beir_tiny").documents.count() == 6

    out = io.StringIO()
    call_command("eval_retrieval", beir=BEIR_TINY, limit_queries=2, stdout=out)
    lines = dict(line.split(": ", 1) for line in out.getvalue().splitlines())
    # q1 and q2: (1 + 3 / (3 + 1 / log2 3)) / 2
    assert lines["lexical_ndcg@10"] == str(_rounded((1 + 3 / (3 + 1 / math.log2(3))) / 2)) == "0.9131"
    assert lines["lexical_recall@100"] == "0.75" and lines["queries"] == "2"


@pytest.mark.django_db
def test_eval_retrieval_refuses_a_folder_that_is_not_a_beir_data_set(tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(CommandError, match="is not a BEIR dataset folder"):
        call_command("eval_retrieval", beir=tmp_path, stdout=io.StringIO())
    with pytest.raises(CommandError, match="exactly one of --beir, --faq or --qa"):
        call_command("eval_retrieval", stdout=io.StringIO())


@pytest.mark.django_db
def test_eval_retrieval_says_the_database_is_not_migrated_before_embedding_anything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from knowledge import embeddings
    from knowledge.management.commands import eval_retrieval

    monkeypatch.setattr(eval_retrieval, "_unapplied_migrations", lambda: 3)
    monkeypatch.setattr(embeddings, "embed_texts", lambda *a, **k: pytest.fail("embedded before the check"))
    with pytest.raises(CommandError, match=r"is not migrated \(3 migrations not applied\).*Nothing was embedded"):
        call_command("eval_retrieval", beir=BEIR_TINY, stdout=io.StringIO())


@pytest.mark.django_db
def test_eval_retrieval_reads_a_faq_set_of_paraphrases_and_reports_every_mode(tmp_path: Path) -> None:
    entries = [
        {"rephr": ["How can I cross out text on GitHub?", "*", None], "question": "Strikethrough with Markdown",
         "answer": ["Use two tildes around the words."]},
        {"rephr": ["Getting rid of my Facebook account"], "question": "How do I delete my Facebook account?",
         "answer": "Go to the settings and choose delete."},
    ]  # fmt: skip
    path = tmp_path / "faq.json"
    path.write_text(json.dumps({"root": {"qapair": entries}}), encoding="utf-8")
    out = io.StringIO()
    call_command("eval_retrieval", faq=path, json=True, stdout=out)
    figures = json.loads(out.getvalue())

    assert (figures["dataset"], figures["documents"], figures["queries"]) == ("faq", 2, 2)  # "*" and null skipped
    for mode in ("lexical", "vector", "rrf", "hybrid"):
        assert 0.0 <= figures[f"{mode}_recall@10"] <= 1.0 and f"{mode}_ndcg@10" in figures
    assert figures["vector_recall@10"] == 1.0  # two documents: both always in the top 10
    assert figures["ranker_status"] == "fallback to fusion"  # two chunks are far too few for a ranker


def test_question_answer_pairs_become_entries_with_the_user_questions_as_their_paraphrases() -> None:
    from knowledge.management.commands.eval_retrieval import faq_entries_from_pairs

    pairs = [
        {"label": 1, "query_type": "faq", "question": "How does it spread? ", "answer": "Through droplets."},
        {"label": 1, "query_type": "faq", "question": "Where to get tested?", "answer": "Call your clinic. "},
        {"label": 1, "query_type": "user_query", "question": "catch it from a cough", "answer": "Through droplets."},
        {"label": 1, "query_type": "user_query", "question": "test sites near me", "answer": "Call your clinic."},
        {"label": 0, "query_type": "user_query", "question": "not this one", "answer": "Call your clinic."},
        {"label": 1, "query_type": "user_query", "question": "orphan", "answer": "An answer no entry names."},
    ]  # fmt: skip
    assert faq_entries_from_pairs(pairs) == [
        {"question": "How does it spread?", "answer": ["Through droplets."], "rephr": ["catch it from a cough"]},
        {"question": "Where to get tested?", "answer": ["Call your clinic."], "rephr": ["test sites near me"]},
        {"question": "", "answer": ["An answer no entry names."], "rephr": ["orphan"]},
    ]  # fmt: skip


@pytest.mark.django_db
def test_eval_retrieval_reads_question_answer_pairs_and_refuses_other_json(tmp_path: Path) -> None:
    pairs = [
        {"label": 1, "query_type": "faq", "question": "Strikethrough with Markdown", "answer": "Use two tildes."},
        {"label": 1, "query_type": "user_query", "question": "cross out text on GitHub", "answer": "Use two tildes."},
        {"label": 1, "query_type": "faq", "question": "Delete a Facebook account", "answer": "Open the settings."},
        {"label": 1, "query_type": "user_query", "question": "removing my profile", "answer": "Open the settings."},
    ]  # fmt: skip
    path = tmp_path / "query_answer_pairs.json"
    path.write_text(json.dumps(pairs), encoding="utf-8")
    out = io.StringIO()
    call_command("eval_retrieval", faq=path, json=True, no_ranker=True, stdout=out)
    figures = json.loads(out.getvalue())
    assert (figures["dataset"], figures["documents"], figures["queries"]) == ("query_answer_pairs", 2, 2)
    assert figures["vector_recall@10"] == 1.0

    path.write_text(json.dumps([1, 2]), encoding="utf-8")
    with pytest.raises(CommandError, match="not a FAQ set in StackFAQ's JSON or a list of question/answer pairs"):
        call_command("eval_retrieval", faq=path, stdout=io.StringIO())


@pytest.mark.django_db
def test_eval_retrieval_gives_a_share_of_the_queries_to_the_ranker_as_signals_and_measures_the_rest(
    tmp_path: Path,
) -> None:
    entries = [
        {"question": f"Entry {n}", "answer": [f"Answer number {n} about topic {n}."], "rephr": [f"topic {n}?", f"{n}"]}
        for n in range(20)
    ]
    path = tmp_path / "faq.json"
    path.write_text(json.dumps({"root": {"qapair": entries}}), encoding="utf-8")
    out = io.StringIO()
    call_command("eval_retrieval", faq=path, json=True, signals=0.5, stdout=out)
    figures = json.loads(out.getvalue())
    assert figures["signal_queries"] + figures["measured_queries"] == figures["queries"] == 40
    assert 0 < figures["signal_queries"] < 40
    with pytest.raises(CommandError, match="--signals is a share of the queries between 0 and 0.9"):
        call_command("eval_retrieval", faq=path, signals=1.0, stdout=io.StringIO())
