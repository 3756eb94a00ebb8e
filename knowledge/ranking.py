"""Query-adaptive fusion of the two search legs, the features a learned ranker scores, and the training
queries generated from a knowledge base's own chunks (no labels from anyone, no cloud model).

Fusion: a convex combination of the legs' normalised scores whose lexical weight follows, per query, two
measures of how much evidence BM25 has:
- coverage: how much of the query the best BM25 hit matches (its score over the query's total idf weight).
  When the words of a question barely occur in the documents (a paraphrase), BM25's best hit matches a
  small share of the query's weight and the ranking leans on the vector leg.
- evidence: the query's total idf weight itself (the BM25 score of a chunk holding every query term once at
  average length). A question of a few words that are common in the knowledge base (every FAQ entry of a
  support base says "account" and "order"; a base of seventy entries has small idf values whatever the
  words) gives BM25 little to tell chunks apart by, and its order is mostly noise: below EVIDENCE_FULL the
  lexical weight falls in proportion. A long query with rare terms (a claim naming a protein, a question
  quoting a product code) keeps the full weight.
When both are full, the legs count as set by LEXICAL_WEIGHT. That weight is further cut when the vector leg
is sure of its best hit: when that hit stands far above the rest of the vector leg's list (its score in
standard deviations above the mean of the next ones, VECTOR_PEAK_*), the question has a clear semantic
match (typically a paraphrase of a passage) and BM25's word matches mostly add noise, so the lexical weight
falls linearly to VECTOR_PEAK_FLOOR of itself.

The ranker itself is trained and registered by portal/ml (a local model); knowledge only asks whoever
registered a provider here for a scorer (knowledge imports no `portal/*` app).
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from django.db import connection

from portal.core.parameters import parameter_value

# Share of the fused score given to the lexical leg when its best hit matches the query fully.
LEXICAL_WEIGHT = 0.5
# Matched share of the query's idf weight at which the lexical leg gets its full weight (1.0: a chunk holds
# every query term once at average length); below it the weight falls linearly to 0.
COVERAGE_FULL = 0.6
# The query's total idf weight at which the lexical leg gets its full weight; below it the weight falls in
# proportion (a query of two words of idf 4 has 8: about a quarter). Chosen on SciFact and StackFAQ together
# with CovidFAQ and Contoso (see the README's retrieval figures): SciFact's claims weigh 25-48 (quartiles),
# FAQ questions 3-23.
EVIDENCE_FULL = 30.0
FUSED_POOL = 30  # fused candidates a ranker re-scores
# The vector leg's peak: its best score in standard deviations above the mean of the next scores among its
# first VECTOR_PEAK_WINDOW. Up to VECTOR_PEAK_START the lexical weight is kept; it falls linearly to
# VECTOR_PEAK_FLOOR of itself at VECTOR_PEAK_END. Chosen on SciFact (see the README's retrieval figures).
VECTOR_PEAK_WINDOW = 50
VECTOR_PEAK_START = 3.0
VECTOR_PEAK_END = 6.0
VECTOR_PEAK_FLOOR = 0.5


@dataclass(frozen=True)
class LexicalLeg:
    ranking: list[tuple[int, float]]
    # The query's total BM25 term weight (sum of idf times query-term count); 0 when no term is indexed.
    query_weight: float = 0.0
    # Query terms no searched base holds, and the base's terms they were searched as (search.spelling_corrections)
    corrections: dict[str, str] = field(default_factory=dict)

    @property
    def coverage(self) -> float:
        """The share of the query's weight its best lexical hit matches (about 1: every term once)."""
        if not self.ranking or self.query_weight <= 0:
            return 0.0
        return self.ranking[0][1] / self.query_weight


@dataclass(frozen=True)
class Fused:
    ranking: list[tuple[int, float]]
    lexical_weight: float
    lexical: dict[int, tuple[int, float]] = field(default_factory=dict)  # chunk -> (rank, score)
    vector: dict[int, tuple[int, float]] = field(default_factory=dict)
    coverage: float = 0.0
    vector_peak: float = 0.0


def lexical_weight_for(
    leg: LexicalLeg,
    base: float = LEXICAL_WEIGHT,
    coverage_full: float = COVERAGE_FULL,
    evidence_full: float = EVIDENCE_FULL,
) -> float:
    """`base`, scaled down by the best hit's coverage of the query and by the query's total idf weight."""
    coverage = min(1.0, max(0.0, leg.coverage / coverage_full))
    evidence = min(1.0, max(0.0, leg.query_weight / evidence_full)) if evidence_full > 0 else 1.0
    return base * coverage * evidence


def vector_peak(vector: Sequence[tuple[int, float]], window: int = VECTOR_PEAK_WINDOW) -> float:
    """How far the vector leg's best score stands above the others: (best - mean) / standard deviation of the
    next scores among the first `window` (0 with fewer than three scores or no spread)."""
    scores = [score for _, score in vector[:window]]
    if len(scores) < 3:
        return 0.0
    rest = scores[1:]
    mean = sum(rest) / len(rest)
    spread = math.sqrt(sum((score - mean) ** 2 for score in rest) / len(rest))
    return (scores[0] - mean) / spread if spread > 0 else 0.0


def vector_peak_factor(
    peak: float, start: float = VECTOR_PEAK_START, end: float = VECTOR_PEAK_END, floor: float = VECTOR_PEAK_FLOOR
) -> float:
    """The share of the lexical weight kept for a vector leg's `peak`: 1 up to `start`, `floor` from `end`."""
    return 1.0 - (1.0 - floor) * min(1.0, max(0.0, (peak - start) / (end - start)))


def _min_max(values: dict[int, float]) -> dict[int, float]:
    if not values:
        return {}
    low, high = min(values.values()), max(values.values())
    spread = high - low
    return {key: (value - low) / spread if spread > 0 else 1.0 for key, value in values.items()}


def adaptive_fuse(
    lexical: LexicalLeg,
    vector: Sequence[tuple[int, float]],
    *,
    base: float = LEXICAL_WEIGHT,
    coverage_full: float = COVERAGE_FULL,
) -> Fused:
    """Convex combination of min-max normalised leg scores with a per-query lexical weight (see the module's
    docstring: BM25's coverage of the query and the query's idf weight, cut when the vector leg's best hit
    stands out).

    A chunk absent from a leg's list gets 0 from that leg (below the list's lowest score).
    """
    lexical_scores = _min_max(dict(lexical.ranking))
    vector_scores = _min_max(dict(vector))
    peak = vector_peak(vector)
    weight = lexical_weight_for(lexical, base, coverage_full) * vector_peak_factor(peak) if vector else 1.0
    scores: dict[int, float] = {}
    for chunk_id in dict.fromkeys([c for c, _ in lexical.ranking] + [c for c, _ in vector]):
        scores[chunk_id] = weight * lexical_scores.get(chunk_id, 0.0) + (1 - weight) * vector_scores.get(chunk_id, 0.0)
    ranking = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return Fused(
        ranking=ranking,
        lexical_weight=weight,
        lexical={c: (rank, s) for rank, (c, s) in enumerate(lexical.ranking, start=1)},
        vector={c: (rank, s) for rank, (c, s) in enumerate(vector, start=1)},
        coverage=lexical.coverage,
        vector_peak=peak,
    )


# ---- features of a candidate ------------------------------------------------------------------------
FEATURE_NAMES = (
    "fused_score",
    "fused_rank_log",
    "vector_norm",
    "vector_gap",
    "vector_rank_log",
    "lexical_norm",
    "lexical_coverage",
    "lexical_rank_log",
    "lexical_missing",
    "query_coverage_x_lexical",
    "text_term_share",
    "term_proximity",
    "title_term_share",
    "heading_term_share",
    "first_chunk",
    "position_log",
    "page_log",
    "length_log",
    "lexical_weight",
)


# What a ranker learns from: every feature but those that measure exact overlap of the query's words with the
# chunk's text. Generated queries are cut from the text, so for them these features all but give the answer
# away (a ranker trained with them put nearly all its weight on them and fell below fusion on real questions).
# The query's lexical weight in the fusion (the same on every row of a query) is left out too: it is what
# FusionScaleScorer reads, and the logistic ranker was chosen without it.
MODEL_FEATURES = tuple(
    name
    for name in FEATURE_NAMES
    if name not in {"text_term_share", "term_proximity", "lexical_coverage", "lexical_weight"}
)


@dataclass(frozen=True)
class CandidateText:
    title_terms: frozenset[str]
    heading_terms: frozenset[str]
    term_positions: dict[str, list[int]]
    position: int
    page: int
    tokens: int


def candidate_texts(
    chunk_ids: Sequence[int], terms: Sequence[str], *, text_positions: bool = True
) -> dict[int, CandidateText]:
    """What the features need of each candidate, in one statement: the query terms found in its text (with
    positions), in its document's title and its headings, and its position, page and length.

    Parsing the texts again (to_tsvector, about 50 us a chunk) is most of the statement's cost, so it is
    skipped for a candidate without a posting of any query term: its lexical text (title, headings and
    text, services.LEXICAL_TEXT_SQL) then holds none of them, so neither does any of its parts, and the
    answer (no terms) is the same. Typically these are the vector leg's candidates. Without
    `text_positions` the texts are not parsed at all (term_positions left empty): for a scorer that reads
    neither of the features made from them (TEXT_FEATURES)."""
    if not chunk_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.id, c.position, COALESCE(c.page_number, 0), c.token_count,
                   CASE WHEN m.matched THEN
                   ARRAY(SELECT t.lexeme FROM unnest(to_tsvector('english', d.title)) t WHERE t.lexeme = ANY(%s))
                   ELSE '{}' END,
                   CASE WHEN m.matched THEN
                   ARRAY(SELECT t.lexeme FROM unnest(to_tsvector('english', c.heading_path)) t
                          WHERE t.lexeme = ANY(%s))
                   ELSE '{}' END,
                   CASE WHEN m.matched AND %s THEN
                   ARRAY(SELECT t.lexeme || ':' || array_to_string(t.positions, ',')
                           FROM unnest(to_tsvector('english', c.text)) t WHERE t.lexeme = ANY(%s))
                   ELSE '{}' END
              FROM knowledge_chunk c JOIN knowledge_document d ON d.id = c.document_id
             CROSS JOIN LATERAL (
                   SELECT EXISTS (SELECT 1 FROM knowledge_posting p WHERE p.chunk_id = c.id AND p.term = ANY(%s))
                          AS matched
                   ) m
             WHERE c.id = ANY(%s)
            """,
            [list(terms), list(terms), text_positions, list(terms), list(terms), list(chunk_ids)],
        )
        rows = cursor.fetchall()
    found: dict[int, CandidateText] = {}
    for chunk_id, position, page, tokens, title, heading, text in rows:
        positions: dict[str, list[int]] = {}
        for item in text:
            lexeme, _, numbers = item.rpartition(":")
            positions[lexeme] = [int(n) for n in numbers.split(",") if n]
        found[int(chunk_id)] = CandidateText(
            frozenset(title), frozenset(heading), positions, int(position), int(page), int(tokens)
        )
    return found


def _proximity(positions: dict[str, list[int]]) -> float:
    """Matched terms over the shortest window holding one occurrence of each (1: all adjacent)."""
    if len(positions) < 2:
        return 1.0 if positions else 0.0
    events = sorted((p, term) for term, values in positions.items() for p in values)
    need, counts, have, best, left = len(positions), dict.fromkeys(positions, 0), 0, math.inf, 0
    for right, (pos, term) in enumerate(events):
        counts[term] += 1
        if counts[term] == 1:
            have += 1
        while have == need:
            best = min(best, pos - events[left][0] + 1)
            counts[events[left][1]] -= 1
            if counts[events[left][1]] == 0:
                have -= 1
            left += 1
        del right
    return need / best if best < math.inf else 0.0


# The features made from the query terms' positions in a chunk's text, the one costly part (parsing the
# candidates' texts again); neither is among MODEL_FEATURES.
TEXT_FEATURES = frozenset({"text_term_share", "term_proximity"})


def candidate_features(
    fused: Fused, terms: Sequence[str], pool: int = FUSED_POOL, needed: Collection[str] | None = None
) -> tuple[list[int], np.ndarray]:
    """The top `pool` fused candidates and their feature rows (FEATURE_NAMES order). With `needed` (the
    features a scorer reads), TEXT_FEATURES are left at 0 unless needed; every other column is the same."""
    chunk_ids = [c for c, _ in fused.ranking[:pool]]
    texts = candidate_texts(chunk_ids, terms, text_positions=needed is None or bool(TEXT_FEATURES & set(needed)))
    vector_top = max((s for _, s in fused.vector.values()), default=0.0)
    vector_scores = _min_max({c: s for c, (_, s) in fused.vector.items()})
    lexical_scores = _min_max({c: s for c, (_, s) in fused.lexical.items()})
    lexical_top = max((s for _, s in fused.lexical.values()), default=0.0)
    coverage_scale = (lexical_top / fused.coverage) if fused.coverage > 0 else 0.0  # the query's weight
    term_count = max(1, len(terms))
    missing_rank = math.log1p(max(len(fused.lexical), len(fused.vector)) + 1)
    rows = []
    for rank, (chunk_id, score) in enumerate(fused.ranking[:pool], start=1):
        text = texts.get(chunk_id) or CandidateText(frozenset(), frozenset(), {}, 0, 0, 0)
        lexical = fused.lexical.get(chunk_id)
        vector = fused.vector.get(chunk_id)
        lexical_coverage = (lexical[1] / coverage_scale) if lexical and coverage_scale > 0 else 0.0
        rows.append(
            [
                score,
                math.log1p(rank),
                vector_scores.get(chunk_id, 0.0),
                (vector[1] - vector_top) if vector else -1.0,
                math.log1p(vector[0]) if vector else missing_rank,
                lexical_scores.get(chunk_id, 0.0),
                lexical_coverage,
                math.log1p(lexical[0]) if lexical else missing_rank,
                0.0 if lexical else 1.0,
                fused.coverage * lexical_scores.get(chunk_id, 0.0),
                len(text.term_positions) / term_count,
                _proximity(text.term_positions),
                len(text.title_terms) / term_count,
                len(text.heading_terms) / term_count,
                1.0 if text.position == 0 else 0.0,
                math.log1p(text.position),
                math.log1p(text.page),
                math.log1p(text.tokens),
                fused.lexical_weight,
            ]
        )
    return chunk_ids, np.asarray(rows, dtype=np.float64).reshape(len(rows), len(FEATURE_NAMES))


# ---- the ranker, provided by an app built on top ----------------------------------------------------
# A scorer maps a feature matrix (FEATURE_NAMES columns) to one score per row, higher is better.
Scorer = Callable[[np.ndarray], np.ndarray]
RankerProvider = Callable[[int], Scorer | None]
_providers: list[RankerProvider] = []
_lock = threading.Lock()


def register_ranker_provider(provider: RankerProvider) -> None:
    with _lock:
        if provider not in _providers:
            _providers.append(provider)


def unregister_ranker_provider(provider: RankerProvider) -> None:
    with _lock:
        if provider in _providers:
            _providers.remove(provider)


def has_ranker_providers() -> bool:
    return bool(_providers)


def ranker_for(knowledge_base_id: int) -> Scorer | None:
    for provider in list(_providers):
        scorer = provider(knowledge_base_id)
        if scorer is not None:
            return scorer
    return None


class FusionScaleScorer:
    """The fusion again over its candidates, with the query's lexical weight times `scale`, a number learned
    per knowledge base from people's questions (portal/ml's ranker training): a base whose staff ask in the
    documents' own words gains from more weight on BM25, one whose staff paraphrase (the FAQ sets) from less.
    Reads only the legs' normalised scores and the query's fused lexical weight."""

    features = frozenset({"lexical_norm", "vector_norm", "lexical_weight"})
    _columns = (
        FEATURE_NAMES.index("lexical_norm"),
        FEATURE_NAMES.index("vector_norm"),
        FEATURE_NAMES.index("lexical_weight"),
    )

    def __init__(self, scale: float) -> None:
        if not math.isfinite(scale) or scale < 0:
            raise ValueError(f"A lexical scale is a finite number >= 0, not {scale!r}.")
        self.scale = float(scale)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        lexical, vector, weight = (np.asarray(features[:, column], dtype=np.float64) for column in self._columns)
        scaled = np.clip(weight * self.scale, 0.0, 1.0)
        scores: np.ndarray = scaled * lexical + (1.0 - scaled) * vector
        return scores


def rerank(fused: Fused, terms: Sequence[str], scorer: Scorer, pool: int = FUSED_POOL) -> list[tuple[int, float]]:
    """The top `pool` fused candidates in the scorer's order, the rest after them in fused order."""
    # a scorer may say which features it reads (`features`, names of FEATURE_NAMES): the others need not be
    # computed
    chunk_ids, features = candidate_features(fused, terms, pool, getattr(scorer, "features", None))
    if not chunk_ids:
        return list(fused.ranking)
    scores = np.asarray(scorer(features), dtype=np.float64)
    offset = float(np.max(scores)) + 1.0
    head = sorted(zip(chunk_ids, scores.tolist(), strict=True), key=lambda item: (-item[1], item[0]))
    tail = [(c, s - offset - 1.0) for c, s in fused.ranking[pool:]]  # keeps them below the head
    return head + tail


# ---- training queries generated from the chunks ----------------------------------------------------
_STOP_WORDS = (
    "a an and are as at be by for from has have how i if in into is it its of on or our that the their there "
    "these this to was were what when where which who why will with you your can may must should do does not "
    "no all any each more most other some such than then they them we us he she his her also been being"
)
STOP = frozenset(_STOP_WORDS.split())
WORD = re.compile(r"[A-Za-z][A-Za-z0-9'\-]+")
SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class GeneratedQuery:
    text: str
    chunk_id: int
    document_id: int
    position: int
    kind: str


def _stable(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16)


def _content_words(text: str) -> list[str]:
    return [w for w in WORD.findall(text) if w.lower() not in STOP and len(w) > 2]


def queries_from_chunk(
    chunk_id: int, document_id: int, position: int, title: str, heading_path: str, text: str
) -> list[GeneratedQuery]:
    """Up to four queries by rule: the last heading, the leading sentence, a phrase of content words from a
    sentence further in (some words dropped, as people leave words out), and a question formed from a
    sentence ("X is Y" -> "what is X"). Deterministic: the same chunk gives the same queries."""
    made: list[tuple[str, str]] = []
    heading = heading_path.split(" > ")[-1].strip() if heading_path else ""
    if len(_content_words(heading)) >= 2 and heading.lower() != title.lower():
        made.append(("heading", heading))
    sentences = [s.strip() for s in SENTENCE.split(" ".join(text.split())) if len(_content_words(s)) >= 4]
    seed = _stable(f"{chunk_id}:{text[:64]}")
    if sentences:
        # the leading sentence's content words, one in three left out (people do not quote the text)
        words = _content_words(sentences[0])[:10]
        made.append(("leading", " ".join(w for i, w in enumerate(words) if (seed >> (20 + i)) % 3 != 0) or words[0]))
    if len(sentences) > 1:
        words = _content_words(sentences[1 + seed % (len(sentences) - 1)])
        start = (seed >> 4) % max(1, len(words) - 6)
        window = words[start : start + 7]
        kept = [w for i, w in enumerate(window) if (seed >> (8 + i)) % 4 != 0] or window
        made.append(("phrase", " ".join(kept[:6])))
    for sentence in sentences[:4]:
        match = re.match(r"^(?:The |A |An )?(.{6,80}?) (is|are|must|will|can|may|should) (.{6,})$", sentence)
        if match and len(_content_words(match.group(1))) >= 1:
            subject, verb = match.group(1), match.group(2)
            question = f"what {verb} {subject}" if verb in {"is", "are"} else f"what {verb} {subject} do"
            made.append(("question", question))
            break
    return [GeneratedQuery(q, chunk_id, document_id, position, kind) for kind, q in made if len(q) >= 8]


def generated_queries(
    chunks: Iterable[tuple[int, int, int, str, str, str]], *, limit: int = 1200
) -> list[GeneratedQuery]:
    """Queries for a sample of chunks (id, document id, position, title, heading path, text), spread over
    the base by a stable hash of the chunk id, at most `limit`."""
    rows = sorted(chunks, key=lambda row: _stable(str(row[0])))
    queries: list[GeneratedQuery] = []
    for row in rows:
        queries.extend(queries_from_chunk(*row))
        if len(queries) >= limit:
            break
    return queries[:limit]


HELD_OUT_BLOCK = 8  # consecutive chunks held out together


def held_out(query: GeneratedQuery, share: int = 5) -> bool:
    """One block of consecutive chunks in `share` is held out (whole blocks, so a validation query's
    overlapping neighbours were not training positives; blocks, not documents, as a base may hold a few)."""
    return _stable(f"block:{query.document_id}:{query.position // HELD_OUT_BLOCK}") % share == 0


# ---- real signals: questions people asked, with the passages that helped them ----------------------
@dataclass(frozen=True)
class LabelledQuestion:
    """A question asked of the portal and the chunks its asker marked as useful (the passages a helpful answer
    cited); the ranker learns from these beside the generated queries."""

    text: str
    positives: frozenset[int]


# A source returns the labelled questions it knows of for one knowledge base (chunks of other bases are
# dropped by the trainer anyway). Registered by the app that keeps the questions (portal/assistant).
SignalSource = Callable[[int], list[LabelledQuestion]]
_signal_sources: list[SignalSource] = []


def register_signal_source(source: SignalSource) -> None:
    with _lock:
        if source not in _signal_sources:
            _signal_sources.append(source)


def unregister_signal_source(source: SignalSource) -> None:
    with _lock:
        if source in _signal_sources:
            _signal_sources.remove(source)


def signals_for(knowledge_base_id: int) -> list[LabelledQuestion]:
    return [question for source in list(_signal_sources) for question in source(knowledge_base_id)]


def held_out_signal(question: LabelledQuestion, share: int = 3) -> bool:
    """One real question in `share` validates the ranker instead of training it (by a stable hash of its text,
    so the same question is always on the same side)."""
    return _stable(f"real:{question.text.strip().lower()}") % share == 0


# ---- training examples for a base's ranker ----------------------------------------------------------
MIN_CHUNKS = 40  # below this a base keeps plain fusion: too few chunks to generate varied queries from
TRAINING_QUERIES = 700  # generated queries per training (bounded so a retraining stays well under 2 minutes)


class NotEnoughChunks(Exception):
    pass


@dataclass
class TrainingSet:
    features: np.ndarray  # one row per candidate
    labels: np.ndarray  # 1 for the chunk the query was made from
    groups: np.ndarray  # query index per row
    held_out: np.ndarray  # per row: its query is a validation query
    queries: int
    chunks: int
    kinds: dict[str, int]
    signature: str
    # per row: the query is a real question with people's signals, not a generated one
    real: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    real_queries: int = 0


def base_chunks(knowledge_base_id: int) -> list[tuple[int, int, int, str, str, str]]:
    """The base's searchable chunks: (id, document id, position, document title, heading path, text)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.id, c.document_id, c.position, d.title, c.heading_path, c.text
              FROM knowledge_chunk c
              JOIN knowledge_document d ON d.id = c.document_id AND d.active_generation = c.generation
             WHERE c.knowledge_base_id = %s
            """,
            [knowledge_base_id],
        )
        return [(int(a), int(b), int(c), d or "", e or "", f or "") for a, b, c, d, e, f in cursor.fetchall()]


def searchable_chunk_count(knowledge_base_id: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(SUM(chunk_count), 0) FROM knowledge_lexicalstatistics WHERE knowledge_base_id = %s",
            [knowledge_base_id],
        )
        return int(cursor.fetchone()[0])


def ranker_eligible_bases() -> list[int]:
    """The knowledge bases with at least MIN_CHUNKS searchable chunks (below it a base keeps fusion)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT knowledge_base_id FROM knowledge_lexicalstatistics GROUP BY knowledge_base_id "
            "HAVING SUM(chunk_count) >= %s ORDER BY knowledge_base_id",
            [MIN_CHUNKS],
        )
        return [int(row[0]) for row in cursor.fetchall()]


def base_signature(knowledge_base_id: int) -> str:
    """Changes whenever a document of the base gets a new searchable version or goes away."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT COUNT(*), COALESCE(SUM(d.id * 31 + d.active_generation), 0)
              FROM knowledge_document d WHERE d.knowledge_base_id = %s AND d.active_generation IS NOT NULL
            """,
            [knowledge_base_id],
        )
        count, total = cursor.fetchone()
    return f"{count}:{total}"


def training_set(
    knowledge_base_id: int,
    *,
    limit: int = TRAINING_QUERIES,
    signals: Sequence[LabelledQuestion] | None = None,
) -> TrainingSet:
    """Candidates of generated queries, searched as the live path does (both legs, adaptive fusion), with
    the source chunk as the positive and the other candidates as hard negatives; a neighbour of the source
    in the same document (chunks overlap) is left out, being neither clearly right nor wrong. Then the real
    questions with people's signals (`signals`, by default those the registered sources hold for the base):
    their useful chunks are the positives, the other candidates negatives; a question none of whose useful
    chunks is among the candidates (or in the base) teaches nothing about ordering them and is skipped."""
    from knowledge import embeddings, search

    chunks = base_chunks(knowledge_base_id)
    if len(chunks) < MIN_CHUNKS:
        raise NotEnoughChunks(f"{len(chunks)} chunks (at least {MIN_CHUNKS} are needed)")
    signature = base_signature(knowledge_base_id)
    queries = generated_queries(chunks, limit=limit)
    by_id = {row[0]: row for row in chunks}
    real = [
        LabelledQuestion(q.text, frozenset(c for c in q.positives if c in by_id))
        for q in (signals_for(knowledge_base_id) if signals is None else signals)
    ]
    real = [q for q in real if q.positives and q.text.strip()]
    acl = search.Acl(
        "c.knowledge_base_id = ANY(%s)", [[knowledge_base_id]], "p.knowledge_base_id = ANY(%s)", [knowledge_base_id]
    )
    texts = [q.text for q in queries] + [q.text for q in real]
    vectors = embeddings.embed_texts(texts, role="query") if texts else np.zeros((0, 1))
    pool = int(parameter_value("search_candidates"))
    rows: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    groups: list[np.ndarray] = []
    held: list[np.ndarray] = []
    is_real: list[np.ndarray] = []
    kinds: dict[str, int] = {}
    used = 0

    def candidates(text: str, vector: np.ndarray) -> tuple[list[int], np.ndarray]:
        fused = adaptive_fuse(search.lexical_leg(text, acl, pool), search.vector_search(vector, acl, pool))
        return candidate_features(fused, list(search.query_terms(text)))

    def add(features: np.ndarray, label: list[float], validation: bool, from_people: bool) -> None:
        nonlocal used
        rows.append(features)
        labels.append(np.asarray(label))
        groups.append(np.full(len(label), used))
        held.append(np.full(len(label), validation))
        is_real.append(np.full(len(label), from_people))
        used += 1

    for query, vector in zip(queries, vectors[: len(queries)], strict=True):
        chunk_ids, features = candidates(query.text, vector)
        if query.chunk_id not in chunk_ids:
            continue  # the source is not among the candidates: nothing to learn about ordering them
        keep = [
            i
            for i, chunk_id in enumerate(chunk_ids)
            if chunk_id == query.chunk_id
            or not (by_id[chunk_id][1] == query.document_id and abs(by_id[chunk_id][2] - query.position) <= 1)
        ]
        add(features[keep], [1.0 if chunk_ids[i] == query.chunk_id else 0.0 for i in keep], held_out(query), False)
        kinds[query.kind] = kinds.get(query.kind, 0) + 1
    real_used = 0
    for question, vector in zip(real, vectors[len(queries) :], strict=True):
        chunk_ids, features = candidates(question.text, vector)
        label = [1.0 if chunk_id in question.positives else 0.0 for chunk_id in chunk_ids]
        if not any(label):
            continue
        add(features, label, held_out_signal(question), True)
        real_used += 1
    width = len(FEATURE_NAMES)
    return TrainingSet(
        features=np.vstack(rows) if rows else np.zeros((0, width)),
        labels=np.concatenate(labels) if labels else np.zeros(0),
        groups=np.concatenate(groups) if groups else np.zeros(0, dtype=int),
        held_out=np.concatenate(held) if held else np.zeros(0, dtype=bool),
        queries=used - real_used,
        chunks=len(chunks),
        kinds=kinds,
        signature=signature,
        real=np.concatenate(is_real) if is_real else np.zeros(0, dtype=bool),
        real_queries=real_used,
    )


# The trainer is registered by the app that keeps models (portal/ml), like the ranker provider.
RankerTrainer = Callable[[int], dict[str, object] | None]
_trainers: list[RankerTrainer] = []


def register_ranker_trainer(trainer: RankerTrainer) -> None:
    with _lock:
        if trainer not in _trainers:
            _trainers.append(trainer)


def ranker_train(knowledge_base_id: int) -> dict[str, object] | None:
    """Train (and, if it beats fusion on held-out generated queries, activate) the base's ranker through the
    registered trainer; None when no trainer is registered. Given the base's id only."""
    for trainer in list(_trainers):
        return trainer(knowledge_base_id)
    return None
