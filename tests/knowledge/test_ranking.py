"""Query-adaptive fusion, the candidate features, the generated training queries, and that a ranker only
ever reorders chunks the user may read."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from knowledge import ranking, search, selectors
from tests.knowledge.test_search import QUERY, corpus  # noqa: F401 (the permission tests' fixture)


# ---- fusion weights -----------------------------------------------------------------------------------
def test_a_query_with_no_lexical_overlap_leans_on_the_vector_leg() -> None:
    # BM25's best hit matches 5% of the query's weight (one common word of a paraphrase): the lexical leg
    # gets almost no say and the vector leg's order stands, even though BM25 ranks chunk 1 first.
    weight = ranking.EVIDENCE_FULL  # a query with enough rare words: only the coverage counts
    lexical = ranking.LexicalLeg([(1, 0.05 * weight), (2, 0.02 * weight)], query_weight=weight)
    vector = [(3, 0.71), (2, 0.70), (1, 0.40)]
    fused = ranking.adaptive_fuse(lexical, vector)
    assert fused.vector_peak < ranking.VECTOR_PEAK_START  # three scores: no clear peak, no cut
    assert fused.lexical_weight == pytest.approx(ranking.LEXICAL_WEIGHT * 0.05 / ranking.COVERAGE_FULL)
    assert fused.lexical_weight < 0.05
    assert [chunk for chunk, _ in fused.ranking] == [3, 2, 1]


def test_no_lexical_hit_at_all_gives_the_vector_order() -> None:
    fused = ranking.adaptive_fuse(ranking.LexicalLeg([], 0.0), [(5, 0.5), (4, 0.3)])
    assert fused.lexical_weight == 0.0 and [c for c, _ in fused.ranking] == [5, 4]


def test_a_query_bm25_matches_fully_gets_the_full_lexical_weight_and_agreement_wins() -> None:
    # the best hit matches the query's whole weight (coverage 1 >= COVERAGE_FULL), and the query weighs enough
    lexical = ranking.LexicalLeg([(1, 40.0), (2, 30.0), (3, 10.0)], query_weight=40.0)
    vector = [(2, 0.80), (3, 0.79), (1, 0.50)]
    fused = ranking.adaptive_fuse(lexical, vector)
    assert fused.lexical_weight == pytest.approx(ranking.LEXICAL_WEIGHT)
    # chunk 2: 0.5 * (30-10)/(40-10) + 0.5 * 1 = 0.8333; chunk 1: 0.5 * 1 + 0.5 * 0 = 0.5; chunk 3: 0 + 0.5 * 0.9667
    assert [c for c, _ in fused.ranking] == [2, 1, 3]
    assert fused.ranking[0][1] == pytest.approx(0.5 * 2 / 3 + 0.5)


def _vector_leg_with_peak(top: float) -> list[tuple[int, float]]:
    # chunk 100 first at `top`, then 49 chunks at 0.40 and 0.42 alternately (mean 0.41, deviation 0.01)
    return [(100, top)] + [(200 + i, 0.40 if i % 2 else 0.42) for i in range(49)]


def test_the_vector_peak_is_the_best_score_in_deviations_above_the_rest() -> None:
    rest = [0.40 if i % 2 else 0.42 for i in range(49)]
    mean = sum(rest) / 49
    deviation = (sum((x - mean) ** 2 for x in rest) / 49) ** 0.5
    assert ranking.vector_peak(_vector_leg_with_peak(0.50)) == pytest.approx((0.50 - mean) / deviation)
    assert ranking.vector_peak([(1, 0.5), (2, 0.4)]) == 0.0  # too few scores to tell
    assert ranking.vector_peak([(1, 0.5), (2, 0.4), (3, 0.4)]) == 0.0  # no spread


def test_a_clear_vector_peak_cuts_the_lexical_weight_down_to_its_floor() -> None:
    start, end, floor = ranking.VECTOR_PEAK_START, ranking.VECTOR_PEAK_END, ranking.VECTOR_PEAK_FLOOR
    assert ranking.vector_peak_factor(start - 1) == 1.0
    assert ranking.vector_peak_factor((start + end) / 2) == pytest.approx((1 + floor) / 2)
    assert ranking.vector_peak_factor(end + 5) == pytest.approx(floor)
    # BM25 matches the query fully in chunk 1, which the vector leg ranks below its clear best hit (chunk 100,
    # about 9 deviations above the rest): the lexical weight is cut to its floor and the vector's hit wins.
    lexical = ranking.LexicalLeg([(1, 40.0), (2, 10.0)], query_weight=40.0)
    vector = [*_vector_leg_with_peak(0.50), (1, 0.35), (3, 0.30)]
    fused = ranking.adaptive_fuse(lexical, vector)
    assert fused.vector_peak > end
    assert fused.lexical_weight == pytest.approx(ranking.LEXICAL_WEIGHT * floor)
    # weight 0.25: chunk 100 0.75 * 1 = 0.75, chunk 1 0.25 + 0.75 * 0.25 = 0.44
    assert fused.ranking[0][0] == 100
    # The same legs without the clear peak (chunk 100 at 0.43, 2 deviations): the full weight, and BM25's
    # chunk 1 (0.5 + 0.5 * 0.05 / 0.13) comes first, before chunk 100 (0.5)
    flat = ranking.adaptive_fuse(lexical, [(100, 0.43), *vector[1:]])
    assert flat.lexical_weight == pytest.approx(ranking.LEXICAL_WEIGHT)
    assert flat.ranking[0][0] == 1


def test_the_lexical_weight_grows_linearly_with_coverage_up_to_its_full_share() -> None:
    weight = ranking.EVIDENCE_FULL
    half = ranking.LexicalLeg([(1, weight * ranking.COVERAGE_FULL / 2)], query_weight=weight)
    assert ranking.lexical_weight_for(half) == pytest.approx(ranking.LEXICAL_WEIGHT / 2)
    over = ranking.LexicalLeg([(1, 3.0 * weight)], query_weight=weight)
    assert ranking.lexical_weight_for(over) == pytest.approx(ranking.LEXICAL_WEIGHT)


def test_the_lexical_weight_falls_with_the_query_s_idf_weight_below_its_full_evidence() -> None:
    # Every query term matched (coverage 1) but the terms are common in the base: the weight follows the
    # query's total idf weight up to EVIDENCE_FULL, and no further.
    full = ranking.EVIDENCE_FULL
    for share in (0.1, 0.25, 0.5, 1.0, 2.0):
        leg = ranking.LexicalLeg([(1, share * full)], query_weight=share * full)
        assert ranking.lexical_weight_for(leg) == pytest.approx(ranking.LEXICAL_WEIGHT * min(1.0, share))
    assert ranking.lexical_weight_for(ranking.LexicalLeg([(1, 5.0)], query_weight=5.0), evidence_full=0) == (
        pytest.approx(ranking.LEXICAL_WEIGHT)
    )


def test_a_short_question_of_common_words_keeps_the_vector_order() -> None:
    # A FAQ-style paraphrase: two words found in every entry (idf about 1.5 each), BM25's best hit matches
    # them fully but ranks the wrong entry first; the vector leg's order, with no clear peak, stands.
    lexical = ranking.LexicalLeg([(1, 3.0), (2, 2.9), (3, 2.0)], query_weight=3.0)
    vector = [(2, 0.62), (3, 0.60), (1, 0.52), (4, 0.50)]
    fused = ranking.adaptive_fuse(lexical, vector)
    assert fused.lexical_weight == pytest.approx(ranking.LEXICAL_WEIGHT * 3.0 / ranking.EVIDENCE_FULL)
    assert [chunk for chunk, _ in fused.ranking][:3] == [2, 3, 1]
    # The same lists for a query whose rare words weigh the full evidence: BM25 counts fully, and its best
    # hit (chunk 1) rises above chunk 3.
    strong = ranking.adaptive_fuse(ranking.LexicalLeg([(1, 30.0), (2, 29.0), (3, 20.0)], query_weight=30.0), vector)
    assert strong.lexical_weight == pytest.approx(ranking.LEXICAL_WEIGHT)
    assert [chunk for chunk, _ in strong.ranking][:2] == [2, 1]


def test_term_proximity_is_matched_terms_over_the_shortest_window() -> None:
    assert ranking._proximity({"a": [1], "b": [2]}) == 1.0
    assert ranking._proximity({"a": [1, 20], "b": [9, 23]}) == pytest.approx(2 / 4)  # 20..23
    assert ranking._proximity({"a": [3]}) == 1.0
    assert ranking._proximity({}) == 0.0


# ---- generated queries ----------------------------------------------------------------------------------
def test_queries_are_generated_by_rule_and_the_same_every_time() -> None:
    text = (
        "Employees accrue paid vacation every month. The vacation policy is reviewed by human resources each year. "
        "Unused vacation days carry over to the following calendar year up to a limit."
    )
    made = ranking.queries_from_chunk(7, 3, 0, "Handbook", "Handbook > Paid vacation policy", text)
    kinds = {q.kind: q.text for q in made}
    assert kinds["heading"] == "Paid vacation policy"
    # the leading sentence's content words, some left out, in their order
    leading = kinds["leading"].split()
    sentence = ["Employees", "accrue", "paid", "vacation", "every", "month"]
    assert leading and leading == [w for w in sentence if w in leading] and len(leading) < len(sentence)
    assert kinds["question"] == "what is vacation policy"
    assert "phrase" in kinds and all(q.chunk_id == 7 and q.document_id == 3 for q in made)
    assert made == ranking.queries_from_chunk(7, 3, 0, "Handbook", "Handbook > Paid vacation policy", text)


def test_held_out_queries_are_whole_documents() -> None:
    same_document = [ranking.GeneratedQuery(f"q{i}", i, 42, i, "leading") for i in range(5)]
    assert len({ranking.held_out(q) for q in same_document}) == 1


# ---- a ranker reorders only what the user may read ------------------------------------------------------
@pytest.fixture
def reversing_ranker(settings: Any) -> Iterator[list[int]]:
    """A ranker for every base that puts the fused order upside down (records the bases it was asked for)."""
    settings.KNOWLEDGE_RANKER_ENABLED = True
    asked: list[int] = []

    def provider(knowledge_base_id: int) -> ranking.Scorer:
        asked.append(knowledge_base_id)
        return lambda features: -features[:, ranking.FEATURE_NAMES.index("fused_score")]

    ranking.register_ranker_provider(provider)
    yield asked
    ranking.unregister_ranker_provider(provider)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("person", "visible"),
    [("olivia", {"open", "restricted", "officer"}), ("sam", {"open"}), ("oscar", set()), ("audrey", set())],
)
def test_ranked_results_hold_only_chunks_the_user_may_read(
    corpus: dict[str, Any],  # noqa: F811
    reversing_ranker: list[int],
    request: pytest.FixtureRequest,
    person: str,
    visible: set[str],
) -> None:
    user = request.getfixturevalue(person)
    for knowledge_bases in (None, [corpus["staff_kb"]], [corpus["hidden_kb"]]):
        found = selectors.retrieve(user=user, query=QUERY, k=10, knowledge_bases=knowledge_bases, audit_event=False)
        names = {name for name, doc in corpus["docs"].items() if doc.pk in {item.document_id for item in found}}
        assert names <= visible
        if knowledge_bases is None:
            assert names == visible


@pytest.mark.django_db
def test_the_ranker_of_the_one_base_searched_reorders_its_candidates(
    corpus: dict[str, Any],  # noqa: F811
    reversing_ranker: list[int],
    olivia: Any,
) -> None:
    acl = search.acl_for(olivia, [corpus["staff_kb"].pk])
    fused = search.hybrid_search(QUERY, acl, 10, ranker=False)
    ranked = search.hybrid_search(QUERY, acl, 10)
    assert len(fused) == 2 and [c for c, _ in ranked] == [c for c, _ in reversed(fused)]
    assert reversing_ranker == [corpus["staff_kb"].pk]
    # candidates from two bases: the rankers' scores are not comparable, fusion answers
    reversing_ranker.clear()
    both = search.acl_for(olivia)
    assert search.hybrid_search(QUERY, both, 10) == search.hybrid_search(QUERY, both, 10, ranker=False)
    assert reversing_ranker == []


@pytest.mark.django_db
def test_features_describe_each_candidate(corpus: dict[str, Any], olivia: Any) -> None:  # noqa: F811
    acl = search.acl_for(olivia, [corpus["staff_kb"].pk])
    fused = ranking.adaptive_fuse(
        search.lexical_leg(QUERY, acl, 10),
        search.vector_search(np.asarray(__import__("knowledge.embeddings").embeddings.embed_query(QUERY)), acl, 10),
    )
    chunk_ids, features = ranking.candidate_features(fused, list(search.query_terms(QUERY)))
    assert features.shape == (len(chunk_ids), len(ranking.FEATURE_NAMES)) and len(chunk_ids) == 2
    column = dict(zip(ranking.FEATURE_NAMES, features[0], strict=True))
    assert column["text_term_share"] == 1.0  # bicycle, repair, workshop all in the chunk
    assert column["term_proximity"] == 1.0  # adjacent
    assert column["first_chunk"] == 1.0 and column["lexical_missing"] == 0.0


# The statement candidate_texts ran before it skipped parsing candidates without a query term's posting.
_PARSE_EVERY_CANDIDATE = """
    SELECT c.id, c.position, COALESCE(c.page_number, 0), c.token_count,
           ARRAY(SELECT t.lexeme FROM unnest(to_tsvector('english', d.title)) t WHERE t.lexeme = ANY(%s)),
           ARRAY(SELECT t.lexeme FROM unnest(to_tsvector('english', c.heading_path)) t WHERE t.lexeme = ANY(%s)),
           ARRAY(SELECT t.lexeme || ':' || array_to_string(t.positions, ',')
                   FROM unnest(to_tsvector('english', c.text)) t WHERE t.lexeme = ANY(%s))
      FROM knowledge_chunk c JOIN knowledge_document d ON d.id = c.document_id
     WHERE c.id = ANY(%s)
"""


@pytest.mark.django_db
def test_candidate_texts_skip_parsing_only_candidates_that_hold_no_query_term() -> None:
    """Terms in the text, only in the title, only in a heading, nowhere: the same as parsing every candidate."""
    from django.db import connection

    from knowledge.models import Chunk
    from tests.knowledge.factories import KnowledgeBaseFactory, ready_document

    knowledge_base = KnowledgeBaseFactory.create(name="texts")
    ready_document(knowledge_base, "text.md", b"The bicycle repair workshop opens at eight; repair bicycles there.")
    ready_document(knowledge_base, "title.md", b"Opening hours are posted at the door.", title="Workshop hours")
    ready_document(knowledge_base, "heading.md", b"# Bicycle parking\n\nSpaces are behind the canteen.")
    ready_document(knowledge_base, "none.md", b"The canteen serves soup on Tuesdays.")
    chunk_ids = list(Chunk.objects.filter(knowledge_base=knowledge_base).values_list("pk", flat=True))
    terms = list(search.query_terms(QUERY))

    found = ranking.candidate_texts(chunk_ids, terms)

    with connection.cursor() as cursor:
        cursor.execute(_PARSE_EVERY_CANDIDATE, [terms, terms, terms, chunk_ids])
        reference = {
            int(chunk_id): ranking.CandidateText(
                frozenset(title),
                frozenset(heading),
                {item.rpartition(":")[0]: [int(n) for n in item.rpartition(":")[2].split(",")] for item in text},
                int(position),
                int(page),
                int(tokens),
            )
            for chunk_id, position, page, tokens, title, heading, text in cursor.fetchall()
        }
    assert found == reference and len(found) == 4
    kinds = {(bool(t.term_positions), bool(t.title_terms), bool(t.heading_terms)) for t in found.values()}
    # (the chunk's text starts with its heading)
    assert kinds == {(True, False, False), (False, True, False), (True, False, True), (False, False, False)}


@pytest.mark.django_db
def test_a_scorer_that_reads_no_text_feature_gets_the_same_values_without_the_texts_parsed(
    corpus: dict[str, Any],  # noqa: F811
    olivia: Any,
) -> None:
    from knowledge import embeddings
    from portal.ml.ranker import LinearScorer

    acl = search.acl_for(olivia, [corpus["staff_kb"].pk])
    fused = ranking.adaptive_fuse(
        search.lexical_leg(QUERY, acl, 10), search.vector_search(embeddings.embed_query(QUERY), acl, 10)
    )
    terms = list(search.query_terms(QUERY))
    columns = [ranking.FEATURE_NAMES.index(name) for name in ranking.MODEL_FEATURES]

    ids, full = ranking.candidate_features(fused, terms)
    same_ids, fewer = ranking.candidate_features(fused, terms, needed=ranking.MODEL_FEATURES)

    assert same_ids == ids and full[:, ranking.FEATURE_NAMES.index("text_term_share")].max() > 0
    np.testing.assert_array_equal(fewer[:, columns], full[:, columns])
    text_columns = [ranking.FEATURE_NAMES.index(name) for name in ranking.TEXT_FEATURES]
    assert not fewer[:, text_columns].any()
    scorer = LinearScorer(np.linspace(-1, 1, len(columns)), 0.5, columns)
    assert scorer.features == set(ranking.MODEL_FEATURES)
    assert ranking.rerank(fused, terms, scorer) == ranking.rerank(fused, terms, lambda rows: scorer(rows))


@pytest.mark.django_db
def test_the_fusion_scale_scorer_reorders_the_candidates_as_fusion_with_a_scaled_lexical_weight() -> None:
    lexical = ranking.LexicalLeg([(1, 9.0), (2, 6.0), (3, 1.0)], query_weight=30.0)
    vector = [(3, 0.9), (2, 0.6), (1, 0.2), (4, 0.1)]
    fused = ranking.adaptive_fuse(lexical, vector)
    assert 0 < fused.lexical_weight < 1
    ids, features = ranking.candidate_features(fused, [], needed=ranking.FusionScaleScorer.features)
    column = dict(zip(ranking.FEATURE_NAMES, features.T, strict=True))
    assert set(column["lexical_weight"]) == {fused.lexical_weight}

    def order(scale: float) -> list[int]:
        scores = ranking.FusionScaleScorer(scale)(features)
        return [ids[i] for i in np.argsort(-scores, kind="stable")]

    assert order(1.0) == [c for c, _ in fused.ranking]  # scale 1: the fusion itself
    assert order(0.0) == [c for c, _ in vector]  # no lexical share: the vector leg's order
    assert order(1000.0)[:3] == [1, 2, 3]  # the weight is capped at 1: BM25's order
    for bad in (-0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            ranking.FusionScaleScorer(bad)
