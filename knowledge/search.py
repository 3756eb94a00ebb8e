"""Hybrid search over chunks: BM25 over a Postgres postings table + pgvector kNN, fused by RRF.

The permission filter is part of both SQL statements: `column = ANY(constant array)` for the readable
knowledge bases and the hidden documents, resolved from guardian's tables just before (see acl_for), so
PostgreSQL tests each candidate row with a hash lookup; the HNSW index scan still drives the vector
query, and with `hnsw.iterative_scan` the scan continues past rows the filter drops until it has k rows.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.utils.html import escape
from rapidfuzz.distance import OSA

from knowledge.models import KnowledgeBase
from knowledge.ranking import LexicalLeg, adaptive_fuse, has_ranker_providers, ranker_for, rerank
from portal.core.config_cache import config_cached_item
from portal.core.parallel import submit_on_own_connection
from portal.core.parameters import parameter_value

BM25_K1 = 0.9
BM25_B = 0.4
# Visible postings scored per query term (see lexical_search); rare terms have fewer and are exact.
POSTINGS_PER_TERM = 1000
RRF_K = 60
# Spelling tolerance of the lexical leg (spelling_corrections): terms of at least SPELLING_MIN_LENGTH letters
# are corrected (one edit; two from SPELLING_LONG_TERM letters; or up to SPELLING_ENDING letters more than a
# term they start with) to a term sharing their first SPELLING_PREFIX letters, which then counts at
# SPELLING_WEIGHT of a query term; at most SPELLING_MAX_TERMS per query.
SPELLING_MIN_LENGTH = 4
SPELLING_LONG_TERM = 9
SPELLING_ENDING = 2
SPELLING_PREFIX = 2
SPELLING_WEIGHT = 1.0
SPELLING_MAX_TERMS = 8
SPELLING_FORM_CHUNKS = 10  # best lexical hits whose words give a corrected word its written form
WORD_RE = re.compile(r"\w+")
# SQL: the english lexemes of one word (a column or parameter in place of {}), space-separated
WORD_LEXEMES_SQL = "(SELECT string_agg(lexeme, ' ') FROM unnest(to_tsvector('english', {})))"
MARK_START = "\x02"
MARK_END = "\x03"
# config_cached_item's key of a user's permission sets (acl_for)
PERMISSION_SETS_KEY = "knowledge.search.permission_sets"


@dataclass(frozen=True)
class Acl:
    """Permission condition in SQL: `sql` on a chunk row aliased `c`, `posting_sql` on a posting aliased `p`.

    Both hold the same test with the same parameters. Neither tests that a chunk belongs to its
    document's active generation: postings exist only for active chunks, and vector_search joins the
    document for it (a join the planner estimates, unlike a correlated subquery per row).
    """

    sql: str
    params: list[Any]
    posting_sql: str = "TRUE"
    # The knowledge bases searched (None: all); BM25's statistics are summed over these only.
    knowledge_base_ids: list[int] | None = None


# A chunk is searchable when it belongs to its document's active generation. Activation only moves the
# document's active_generation (one row) instead of rewriting every chunk row and its index entries.
ACTIVE_CHUNK_SQL = (
    "{a}.generation = (SELECT d.active_generation FROM knowledge_document d WHERE d.id = {a}.document_id)"
)


def granted_knowledge_bases_sql(user_id: int, codename: str) -> tuple[str, list[Any]]:
    """A statement of the ids of the knowledge bases on which the user holds `codename` (guardian's tables: a
    grant to the user or to one of their roles), with its parameters; superusers are the caller's concern."""
    content_type_id = ContentType.objects.get_for_model(KnowledgeBase).pk
    return (
        """
        SELECT uop.object_pk::bigint FROM guardian_userobjectpermission uop
          JOIN auth_permission p ON p.id = uop.permission_id
         WHERE uop.user_id = %s AND uop.content_type_id = %s AND p.codename = %s
        UNION
        SELECT gop.object_pk::bigint FROM guardian_groupobjectpermission gop
          JOIN auth_permission p ON p.id = gop.permission_id
          JOIN auth_user_groups ug ON ug.group_id = gop.group_id
         WHERE ug.user_id = %s AND gop.content_type_id = %s AND p.codename = %s
        """,
        [user_id, content_type_id, codename, user_id, content_type_id, codename],
    )


def acl_for(
    user: AbstractBaseUser | AnonymousUser | None, knowledge_base_ids: Sequence[int] | None = None, alias: str = "c"
) -> Acl:
    """SQL condition on a chunk row (`alias`) that holds exactly when `user` may read the chunk.

    A chunk is readable when its knowledge base grants the user (directly or through a role) view
    permission and its document is not restricted to roles the user lacks; editors of a knowledge base
    (change permission) see all its documents. Superusers read everything, as in guardian. Without
    `knowledge_base_ids` (every base the user reads), unlisted bases are left out.
    """
    # Conditions as templates over the row alias {a}; the same list serves chunks and postings.
    conditions: list[str] = []
    params: list[Any] = []
    # The knowledge bases searched: those asked for, narrowed to those the user reads (None: all).
    scope = None if knowledge_base_ids is None else {int(pk) for pk in knowledge_base_ids}
    if user is None or not user.is_authenticated:
        scope = set()
    elif not getattr(user, "is_superuser", False):
        user_id = int(user.pk)

        def permission_sets() -> tuple[tuple[int, ...], tuple[int, ...]]:
            view_sql, view_params = granted_knowledge_bases_sql(user_id, "view_knowledgebase")
            change_sql, change_params = granted_knowledge_bases_sql(user_id, "change_knowledgebase")
            # The knowledge bases the user reads, and the documents in them restricted to roles the user has
            # none of (outside the knowledge bases the user edits), are resolved first and enter the search
            # statements as constant arrays: PostgreSQL then tests each candidate row against a hash table
            # instead of scanning an array built by a subquery (which it cannot hash), a linear cost per row
            # that grew with the number of restricted documents. The arrays are cast to bigint, the columns'
            # type: psycopg sends a list of small numbers as integer[], and PostgreSQL hashes `= ANY` only for
            # an operator of one type (bigint = integer has two hash functions), so it compared each row with
            # every element: at a million chunks, 2,400 hidden documents made BM25's p50 32 ms instead of 5.5.
            with connection.cursor() as cursor:
                cursor.execute(
                    f"""
                    WITH visible AS ({view_sql})
                    SELECT ARRAY(SELECT object_pk FROM visible ORDER BY 1),
                           ARRAY(SELECT r.document_id FROM knowledge_document_restricted_to_roles r
                                   JOIN knowledge_document d ON d.id = r.document_id
                                  WHERE d.knowledge_base_id IN (SELECT object_pk FROM visible)
                                    AND d.knowledge_base_id NOT IN ({change_sql})
                                  GROUP BY r.document_id
                                 HAVING NOT bool_or(
                                        r.group_id IN (SELECT group_id FROM auth_user_groups WHERE user_id = %s))
                                  ORDER BY 1)
                    """,  # noqa: S608 (literals of this function; values are parameters)
                    [*view_params, *change_params, user_id],
                )
                visible, hidden = cursor.fetchone()
            return tuple(visible), tuple(hidden)

        # Kept per user and process until a write to any table they are read from (grants, roles, role
        # memberships, restrictions, a document's move) moves the configuration generation (the triggers of
        # migration knowledge 0013); read unpinned, so a change committed anywhere applies at the next search.
        visible_ids, hidden_document_ids = config_cached_item(
            PERMISSION_SETS_KEY, user_id, permission_sets, unpinned=True
        )
        scope = set(visible_ids) if scope is None else set(visible_ids) & scope
        if hidden_document_ids:
            conditions.append("NOT ({a}.document_id = ANY(%s::bigint[]))")
            params.append(list(hidden_document_ids))

    if knowledge_base_ids is None and scope != set():
        # "Everything the user reads" never takes in unlisted bases (a conversation's attached files): those
        # are searched only when named, by the conversation they belong to.
        unlisted = KnowledgeBase.objects.filter(unlisted=True)
        if scope is not None:
            scope -= set(unlisted.filter(pk__in=sorted(scope)).values_list("pk", flat=True))
        elif unlisted.exists():  # a superuser: every listed base, which also keeps BM25's statistics to those
            scope = set(KnowledgeBase.objects.filter(unlisted=False).values_list("pk", flat=True))

    if scope is not None:
        conditions.insert(0, "{a}.knowledge_base_id = ANY(%s::bigint[])")
        params.insert(0, sorted(scope))

    def render(row_alias: str) -> str:
        return " AND ".join(condition.replace("{a}", row_alias) for condition in conditions) or "TRUE"

    return Acl(render(alias), params, render("p"), None if scope is None else sorted(scope))


# ---- lexical ---------------------------------------------------------------------------------------
def query_terms(query: str) -> dict[str, int]:
    """The query's terms as the lexical index has them (english stemming, stop words dropped)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT lexeme, COALESCE(array_length(positions, 1), 1) FROM unnest(to_tsvector('english', %s))",
            [query[:10_000]],
        )
        return {lexeme: count for lexeme, count in cursor.fetchall() if len(lexeme) <= 100}


def lexical_search(query: str, acl: Acl, limit: int) -> list[tuple[int, float]]:
    return lexical_leg(query, acl, limit).ranking


def lexical_leg(query: str, acl: Acl, limit: int) -> LexicalLeg:
    """BM25 over the postings in one statement: query terms, their idf, and the capped scoring.

    Term-at-a-time with a cap per term: each term contributes its POSTINGS_PER_TERM visible postings with
    the highest term frequency (index knowledge_posting_term_tf, walked in order, the permission test
    applied to each index entry so the cap counts visible chunks only). Rare terms, the ones that decide
    a ranking, have fewer postings than the cap and are scored exactly; a very common term (low idf) only
    loses its small contribution to chunks outside its top list. The work per query stays bounded however
    large the corpus grows, and the index alone answers it (an index-only scan: the posting carries the
    knowledge base, document and chunk length).

    A query word the searched knowledge bases do not hold ("servises", "helth") is searched as the base's
    own nearest term as well (spelling_corrections): a second statement, only for such queries.
    """
    tolerant = bool(getattr(settings, "KNOWLEDGE_SPELLING_CORRECTION", True))
    leg, unknown = _bm25(query, acl, limit, {}, unknown_wanted=tolerant)
    if not unknown or not tolerant:
        return leg
    corrections = spelling_corrections(query, unknown, acl)
    if not corrections:
        return leg
    corrected, _ = _bm25(query, acl, limit, corrections)
    return LexicalLeg(corrected.ranking, corrected.query_weight, corrections)


def _bm25(
    query: str, acl: Acl, limit: int, corrections: dict[str, str], *, unknown_wanted: bool = False
) -> tuple[LexicalLeg, list[str]]:
    """The BM25 ranking of `query` (its words plus the corrections' terms, which stand in for the words
    they correct at SPELLING_WEIGHT of the weight) and the query's terms no searched base holds (read by a
    second statement when nothing matched, only if `unknown_wanted`)."""
    query_terms_sql = (
        "SELECT lexeme AS term, COALESCE(array_length(positions, 1), 1)::float8 AS count "
        "FROM unnest(to_tsvector('english', %s))"
    )
    query_params: list[Any] = [query[:10_000]]
    if corrections:  # a correction's term may also be in the query as typed: one row per term
        query_terms_sql = (
            f"SELECT term, SUM(count) AS count FROM ({query_terms_sql} UNION ALL "
            "SELECT extra, %s::float8 FROM unnest(%s::text[]) AS extra) typed GROUP BY term"
        )
        query_params += [SPELLING_WEIGHT, list(corrections.values())]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH stats AS (
                SELECT SUM(chunk_count)::float8 AS n, SUM(total_length)::float8 / SUM(chunk_count) AS average_length
                  FROM knowledge_lexicalstatistics
                 WHERE %s::bigint[] IS NULL OR knowledge_base_id = ANY(%s::bigint[])
                HAVING SUM(chunk_count) > 0
            ), terms AS (
                SELECT t.term, t.count, f.df
                  FROM ({query_terms_sql}) t
                 CROSS JOIN LATERAL (
                       SELECT SUM(ts.document_frequency)::float8 AS df FROM knowledge_termstatistic ts
                        WHERE ts.term = t.term AND (%s::bigint[] IS NULL OR ts.knowledge_base_id = ANY(%s::bigint[]))
                       ) f
                 WHERE length(t.term) <= 100
            ), q AS (
                SELECT terms.term, s.average_length,
                       terms.count * ln(1 + (s.n - terms.df + 0.5) / (terms.df + 0.5)) AS weight
                  FROM terms CROSS JOIN stats s
                 WHERE terms.df > 0
            )
            SELECT top.chunk_id, SUM(top.contribution) AS score, (SELECT SUM(weight) FROM q) AS query_weight,
                   (SELECT array_agg(term ORDER BY term) FROM terms WHERE df IS NULL) AS unknown
              FROM q CROSS JOIN LATERAL (
                    SELECT p.chunk_id,
                           q.weight * p.tf * (%s + 1)
                             / (p.tf + %s * (1 - %s + %s * p.chunk_length / q.average_length)) AS contribution
                      FROM knowledge_posting p
                     WHERE p.term = q.term AND {acl.posting_sql}
                     ORDER BY p.tf DESC
                     LIMIT %s
                   ) AS top
             GROUP BY top.chunk_id
             ORDER BY score DESC, top.chunk_id
             LIMIT %s
            """,  # noqa: S608 (acl.posting_sql and query_terms_sql are literals; values are parameters)
            [
                *(acl.knowledge_base_ids, acl.knowledge_base_ids, *query_params),
                *(acl.knowledge_base_ids, acl.knowledge_base_ids),
                *(BM25_K1, BM25_K1, BM25_B, BM25_B, *acl.params, POSTINGS_PER_TERM, limit),
            ],
        )
        rows = cursor.fetchall()
        unknown: list[str] = []
        if rows:
            unknown = list(rows[0][3] or [])
        elif unknown_wanted:  # nothing matched: every term may be unknown (the statement's rows carry them otherwise)
            cursor.execute(
                """
                SELECT t.lexeme FROM unnest(to_tsvector('english', %s)) t
                 WHERE length(t.lexeme) <= 100 AND NOT EXISTS (
                       SELECT 1 FROM knowledge_termstatistic ts
                        WHERE ts.term = t.lexeme AND (%s::bigint[] IS NULL OR ts.knowledge_base_id = ANY(%s::bigint[])))
                 ORDER BY t.lexeme
                """,
                [query[:10_000], acl.knowledge_base_ids, acl.knowledge_base_ids],
            )
            unknown = [lexeme for (lexeme,) in cursor.fetchall()]
    leg = LexicalLeg(
        [(int(chunk_id), float(score)) for chunk_id, score, *_ in rows], float(rows[0][2]) if rows else 0.0
    )
    return leg, [term for term in unknown if term not in corrections]


# ---- spelling --------------------------------------------------------------------------------------
def allowed_distance(term: str) -> int:
    """Edits a query term may be away from the base's term it is read as: none for short or non-alphabetic
    terms (codes, numbers and three-letter words have too many neighbours), one up to SPELLING_LONG_TERM
    letters, two from there."""
    if len(term) < SPELLING_MIN_LENGTH or not term.isalpha():
        return 0
    return 2 if len(term) >= SPELLING_LONG_TERM else 1


def choose_corrections(unknown: Sequence[str], vocabulary: dict[str, float]) -> dict[str, str]:
    """For each unknown term, the vocabulary's nearest term (Damerau-Levenshtein distance, the optimal
    string alignment: a swapped pair of letters is one edit) within allowed_distance, or a term it starts
    with and exceeds by up to SPELLING_ENDING letters (a misspelt inflection the stemmer could not strip:
    "hearin" is "hear" and an ending); among equally near terms the one in most chunks, then the first in
    alphabetical order. Terms with no such neighbour are left out."""
    chosen: dict[str, str] = {}
    for term in unknown:
        limit = allowed_distance(term)
        if not limit:
            continue
        best: tuple[int, float, str] | None = None
        for candidate, frequency in vocabulary.items():
            if candidate[:SPELLING_PREFIX] != term[:SPELLING_PREFIX]:
                continue
            ending = term.startswith(candidate) and len(term) - len(candidate) <= SPELLING_ENDING
            if abs(len(candidate) - len(term)) > limit and not ending:
                continue
            distance = OSA.distance(term, candidate)
            if (distance <= limit or ending) and (best is None or (distance, -frequency, candidate) < best):
                best = (distance, -frequency, candidate)
        if best is not None:
            chosen[term] = best[2]
    return chosen


def spelling_corrections(query: str, unknown: Sequence[str], acl: Acl) -> dict[str, str]:
    """Corrections of the query terms no searched knowledge base holds, to terms the bases do hold.

    Only a term typed as a word outside the dictionary (embeddings.dictionary_words) is corrected: a real
    word the documents do not use ("vaccine" in a base that never says it) stays itself, and so does an
    acronym or symbol (a capital after its first letter). Candidates share
    the term's first SPELLING_PREFIX letters (a misspelling rarely starts wrong, and the prefix lets the
    term index find them): one statement for all of a query's unknown terms, none when every word is in
    the dictionary."""
    from knowledge.embeddings import dictionary_words

    dictionary = dictionary_words()
    # a capital after the first letter marks an acronym or a symbol ("DLNs", "PtdIns"), not a misspelling
    words = {match.group(0) for match in WORD_RE.finditer(query)}
    typed = sorted({word.lower() for word in words if word[1:] == word[1:].lower()} - dictionary)
    # a term can only come from a typed word that starts as it does (the stemmer changes endings)
    candidates = [
        term
        for term in unknown
        if allowed_distance(term) and any(word.startswith(term[:SPELLING_PREFIX]) for word in typed)
    ][:SPELLING_MAX_TERMS]
    if not candidates:
        return {}
    conditions: list[str] = []
    params: list[Any] = []
    for term in candidates:
        limit = allowed_distance(term)
        conditions.append("(ts.term LIKE %s AND length(ts.term) BETWEEN %s AND %s)")
        params += [_like_prefix(term[:SPELLING_PREFIX]), len(term) - max(limit, SPELLING_ENDING), len(term) + limit]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT 'typed', {WORD_LEXEMES_SQL.format("w.word")}, 0
              FROM unnest(%s::text[]) AS w(word)
            UNION ALL
            SELECT 'term', ts.term, SUM(ts.document_frequency)::float8 FROM knowledge_termstatistic ts
             WHERE ({" OR ".join(conditions)})
               AND ts.document_frequency > 0
               AND (%s::bigint[] IS NULL OR ts.knowledge_base_id = ANY(%s::bigint[]))
             GROUP BY ts.term
            """,  # noqa: S608 (the conditions are literals; values are parameters)
            [typed, *params, acl.knowledge_base_ids, acl.knowledge_base_ids],
        )
        rows = cursor.fetchall()
    misspelt = {lexeme for kind, lexeme, _ in rows if kind == "typed" and lexeme}
    vocabulary = {term: float(frequency) for kind, term, frequency in rows if kind == "term"}
    return choose_corrections([term for term in candidates if term in misspelt], vocabulary)


def corrected_query(query: str, lexical: LexicalLeg) -> str | None:
    """The query with its corrected words written as the knowledge base writes them, for the vector leg
    (an embedding of "hearin servises" is far from one of "hearing services"), or None when nothing changes.

    Each corrected word becomes the form, among the words of the lexical leg's best hits that stem to its
    correction, nearest to the word as typed ("servises" -> "services", not "service"); one statement."""
    if not lexical.corrections or not lexical.ranking:
        return None
    words = sorted({match.group(0).lower() for match in WORD_RE.finditer(query)})
    prefixes = sorted({term[: SPELLING_PREFIX + 1] for term in lexical.corrections.values()})
    pattern = r"\m((?:" + "|".join(re.escape(prefix) for prefix in prefixes) + r")\w*)"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH forms AS (
                SELECT DISTINCT lower(m[1]) AS word FROM knowledge_chunk c
                 CROSS JOIN LATERAL regexp_matches(c.text, %s, 'gi') m
                 WHERE c.id = ANY(%s::bigint[])
            )
            SELECT 'typed', w.word, {WORD_LEXEMES_SQL.format("w.word")} FROM unnest(%s::text[]) AS w(word)
            UNION ALL
            SELECT 'form', f.word, {WORD_LEXEMES_SQL.format("f.word")} FROM forms f
            """,  # noqa: S608 (WORD_LEXEMES_SQL is a literal; values are parameters)
            [pattern, [chunk_id for chunk_id, _ in lexical.ranking[:SPELLING_FORM_CHUNKS]], words],
        )
        rows = cursor.fetchall()
    forms: dict[str, list[str]] = {}
    for kind, word, lexeme in rows:
        if kind == "form" and lexeme:
            forms.setdefault(lexeme, []).append(word)
    replacements: dict[str, str] = {}
    for kind, word, lexeme in rows:
        target = lexical.corrections.get(lexeme or "") if kind == "typed" else None
        if target and forms.get(target):
            replacements[word] = min(forms[target], key=lambda form: (OSA.distance(word, form), form))
    if not replacements:
        return None

    def written(match: re.Match[str]) -> str:
        typed = match.group(0)
        form = replacements.get(typed.lower())
        if form is None:
            return typed
        return form[:1].upper() + form[1:] if typed[:1].isupper() else form  # "Lodnon" -> "London"

    return WORD_RE.sub(written, query)


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# ---- vector ----------------------------------------------------------------------------------------
def session_settings() -> str:
    """Per-connection settings of the vector leg, sent once when a connection opens (knowledge.apps).

    iterative_scan lets the HNSW scan continue past rows the permission filter drops until it has
    enough; JIT compilation would cost more than these short queries run.
    """
    ef = int(settings.KNOWLEDGE_HNSW_EF_SEARCH)
    return f"SET hnsw.ef_search = {ef}; SET hnsw.iterative_scan = relaxed_order; SET jit = off"


# The HNSW walk needs a wider beam (hnsw.ef_search) as the graph grows for the same recall: on the benchmark's
# vectors, recall@50 with the permission filter was 0.95-0.99 at 100k chunks with ef_search 100, but 0.84 at a
# million, where ef_search 400 / 600 / 800 / 1000 gave 0.908 / 0.960 / 0.965 / 0.967 (README, "A million
# chunks"). So the configured ef_search holds up to EF_SEARCH_REFERENCE_CHUNKS indexed chunks and grows beyond
# by (chunks / reference) ** EF_SEARCH_GROWTH (631 at a million), up to EF_SEARCH_MAX (pgvector's limit); it is
# never below the rows asked for. The permission filter's selectivity sets how far the iterative scan may go
# (hnsw.max_scan_tuples): to find `limit` visible rows among those walked it needs about limit / share of them.
EF_SEARCH_REFERENCE_CHUNKS = 100_000
EF_SEARCH_GROWTH = 0.8
EF_SEARCH_MAX = 1000
MAX_SCAN_TUPLES_DEFAULT = 20_000  # pgvector's default
MAX_SCAN_TUPLES_MAX = 200_000
# The chunks per knowledge base are read at most this often per process (only the beam's width depends on them).
CORPUS_SIZES_SECONDS = 60.0


@dataclass(frozen=True)
class ScanSettings:
    ef_search: int
    max_scan_tuples: int


def scan_settings_for(indexed_chunks: int, searched_chunks: int, limit: int, ef_search: int) -> ScanSettings:
    """The vector leg's hnsw.ef_search and hnsw.max_scan_tuples for a graph of `indexed_chunks` of which the
    search may return `searched_chunks` (the knowledge bases searched), `ef_search` the configured width."""
    growth = max(1.0, indexed_chunks / EF_SEARCH_REFERENCE_CHUNKS) ** EF_SEARCH_GROWTH
    ef = max(limit, min(max(ef_search, EF_SEARCH_MAX), round(ef_search * growth)))
    share = min(1.0, max(searched_chunks, 1) / max(indexed_chunks, 1))
    scan = min(MAX_SCAN_TUPLES_MAX, max(MAX_SCAN_TUPLES_DEFAULT, math.ceil(2 * max(ef, limit / share))))
    return ScanSettings(ef, scan)


_corpus_sizes: tuple[float, dict[int, int]] = (-math.inf, {})
_corpus_sizes_lock = threading.Lock()


def corpus_sizes() -> dict[int, int]:
    """Active chunks per knowledge base (BM25's statistics), read again after CORPUS_SIZES_SECONDS."""
    global _corpus_sizes
    read_at, sizes = _corpus_sizes
    if time.monotonic() - read_at < CORPUS_SIZES_SECONDS:
        return sizes
    with connection.cursor() as cursor:
        cursor.execute("SELECT knowledge_base_id, chunk_count FROM knowledge_lexicalstatistics")
        sizes = {int(base_id): int(count) for base_id, count in cursor.fetchall()}
    with _corpus_sizes_lock:
        _corpus_sizes = (time.monotonic(), sizes)
    return sizes


def vector_scan_settings(acl: Acl, limit: int) -> ScanSettings:
    sizes = corpus_sizes()
    indexed = sum(sizes.values())
    scope = acl.knowledge_base_ids
    searched = indexed if scope is None else sum(sizes.get(int(pk), 0) for pk in scope)
    return scan_settings_for(indexed, searched, limit, int(settings.KNOWLEDGE_HNSW_EF_SEARCH))


def vector_search(
    query_vector: np.ndarray, acl: Acl, limit: int, ef_search: int | None = None
) -> list[tuple[int, float]]:
    """The `limit` nearest chunks the ACL lets through, by an HNSW walk as wide as scan settings say for the
    corpus and the filter (vector_scan_settings), or exactly `ef_search` when given (the benchmarks)."""
    if ef_search is None:
        scan = vector_scan_settings(acl, limit)
    else:
        scan = ScanSettings(max(int(ef_search), limit), MAX_SCAN_TUPLES_DEFAULT)
    vector_text = "[" + ",".join(f"{value:.7g}" for value in np.asarray(query_vector, dtype=np.float32)) + "]"
    # The active generation as a join: estimated as the near-total share it is, whereas a correlated
    # subquery per row was estimated to keep 0.5% of the rows, which made the planner sort every
    # visible chunk by distance (exactly, but 3x slower at 10k chunks) instead of walking the HNSW index.
    statement = f"""
        SELECT c.id, c.embedding <=> %s::vector AS distance
          FROM knowledge_chunk c
          JOIN knowledge_document active ON active.id = c.document_id AND active.active_generation = c.generation
         WHERE {acl.sql}
         ORDER BY c.embedding <=> %s::vector
         LIMIT %s
    """  # noqa: S608
    params = [vector_text, *acl.params, vector_text, limit]
    # The connection runs with the configured ef_search and iterative scans (session_settings); wider
    # settings need a transaction to scope their SET LOCAL.
    default = scan == ScanSettings(int(settings.KNOWLEDGE_HNSW_EF_SEARCH), MAX_SCAN_TUPLES_DEFAULT)
    with nullcontext() if default else transaction.atomic(), connection.cursor() as cursor:
        if not default:
            cursor.execute(f"SET LOCAL hnsw.ef_search = {int(scan.ef_search)}")
            cursor.execute(f"SET LOCAL hnsw.max_scan_tuples = {int(scan.max_scan_tuples)}")
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    # relaxed_order may return neighbours slightly out of order: sort them exactly.
    return sorted(((int(chunk_id), 1.0 - float(distance)) for chunk_id, distance in rows), key=lambda r: -r[1])


# ---- fusion ----------------------------------------------------------------------------------------
def rrf_fuse(rankings: Sequence[Sequence[tuple[int, float]]], k: int = RRF_K) -> list[tuple[int, float]]:
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, (chunk_id, _) in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def hybrid_search(
    query: str,
    acl: Acl,
    limit: int,
    *,
    mode: str = "hybrid",
    query_vector: np.ndarray | None = None,
    candidates: int | None = None,
    ranker: bool | None = None,
    searched_as: list[str] | None = None,
) -> list[tuple[int, float]]:
    """The live search: both legs (in parallel where a pool allows), query-adaptive fusion, then the
    knowledge base's ranker when one is active and rankers are used (`ranker`, by default the setting
    KNOWLEDGE_RANKER_ENABLED; see knowledge.ranking); `mode` runs one leg alone. When the query's misspelt
    words were searched as the documents write them (corrected_query), that text is appended to
    `searched_as`: its words come from chunks the searcher reads, so snippets may mark them."""
    pool = max(limit, int(candidates or parameter_value("search_candidates")))
    if mode == "lexical":
        lexical = lexical_leg(query, acl, pool)
        if searched_as is not None and (rewritten := corrected_query(query, lexical)) is not None:
            searched_as.append(rewritten)
        return lexical.ranking[:limit]
    if mode == "vector":
        return vector_search(_query_vector(query, query_vector), acl, pool)[:limit]
    # The vector leg (with the query's embedding) runs on a second pooled connection while this one runs
    # BM25: two PostgreSQL backends on two cores, so the search takes the longer leg, not both.
    vector_soon = submit_on_own_connection(vector_search_for, query, query_vector, acl, pool)
    lexical = lexical_leg(query, acl, pool)
    vector = vector_search_for(query, query_vector, acl, pool) if vector_soon is None else vector_soon.result()
    rewritten = corrected_query(query, lexical)
    if rewritten is not None:  # misspelt words: the vector leg again, with the words spelt as the base does
        vector = vector_search_for(rewritten, None, acl, pool)
        if searched_as is not None:
            searched_as.append(rewritten)
    fused = adaptive_fuse(lexical, vector)
    use_ranker = bool(getattr(settings, "KNOWLEDGE_RANKER_ENABLED", False)) if ranker is None else ranker
    scorer = _ranker_for_results(fused.ranking, acl) if use_ranker else None
    if scorer is None:
        return fused.ranking[:limit]
    return rerank(fused, list(query_terms(query)), scorer)[:limit]


def _ranker_for_results(ranking: Sequence[tuple[int, float]], acl: Acl | None = None) -> Any:
    """The ranker of the one knowledge base the candidates come from (None when they span several: the
    rankers' scores are not comparable across bases). A search scoped to one base needs no lookup."""
    if not ranking or not has_ranker_providers():
        return None
    if acl is not None and acl.knowledge_base_ids is not None and len(acl.knowledge_base_ids) == 1:
        return ranker_for(int(acl.knowledge_base_ids[0]))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT knowledge_base_id FROM knowledge_chunk WHERE id = ANY(%s) LIMIT 2",
            [[chunk_id for chunk_id, _ in ranking[:50]]],
        )
        bases = [row[0] for row in cursor.fetchall()]
    return ranker_for(int(bases[0])) if len(bases) == 1 else None


def _query_vector(query: str, query_vector: np.ndarray | None) -> np.ndarray:
    if query_vector is not None:
        return query_vector
    from knowledge.embeddings import embed_query

    return embed_query(query)


def vector_search_for(query: str, query_vector: np.ndarray | None, acl: Acl, pool: int) -> list[tuple[int, float]]:
    """The vector leg of hybrid_search: with `query_vector`, else the query's (cached) embedding."""
    return vector_search(_query_vector(query, query_vector), acl, pool)


# ---- the page a citation points to ------------------------------------------------------------------
def cited_pages(query: str, chunks: dict[int, tuple[str, Sequence[Sequence[int]]]]) -> dict[int, int]:
    """For chunks that run over several pages: the page whose part of the text matches the query best.

    `chunks`: id -> (text, page starts as [[offset, page], ...]). Each page's part is matched with the
    query's stemmed terms (distinct terms found, then occurrences); a tie goes to the earlier page. Chunks
    on one page, and chunks where no part matches, are left out: they are cited by the page they start
    on. One query for all the parts.
    """
    parts: list[tuple[int, int, str]] = []
    for chunk_id, (text, starts) in chunks.items():
        if len(starts) < 2 or not query:
            continue
        for index, (offset, page) in enumerate(starts):
            end = starts[index + 1][0] if index + 1 < len(starts) else len(text)
            parts.append((chunk_id, int(page), text[int(offset) : int(end)]))
    if not parts:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH q AS (SELECT lexeme FROM unnest(to_tsvector('english', %s)))
            SELECT p.i, COUNT(t.lexeme),
                   COALESCE(SUM(COALESCE(array_length(t.positions, 1), 1)) FILTER (WHERE t.lexeme IS NOT NULL), 0)
              FROM unnest(%s::text[]) WITH ORDINALITY AS p(body, i)
              LEFT JOIN LATERAL unnest(to_tsvector('english', p.body)) t ON t.lexeme IN (SELECT lexeme FROM q)
             GROUP BY p.i
            """,
            [query[:10_000], [body for _, _, body in parts]],
        )
        matches = {int(i): (int(terms), int(occurrences)) for i, terms, occurrences in cursor.fetchall()}
    best: dict[int, tuple[tuple[int, int], int]] = {}
    for number, (chunk_id, page, _) in enumerate(parts, start=1):
        score = matches.get(number, (0, 0))
        if score > (0, 0) and (chunk_id not in best or score > best[chunk_id][0]):
            best[chunk_id] = (score, page)
    return {chunk_id: page for chunk_id, (_, page) in best.items()}


# ---- snippets --------------------------------------------------------------------------------------
def highlighted_snippets(query: str, chunk_ids: Sequence[int], max_words: int = 40) -> dict[int, str]:
    """Escaped HTML snippet per chunk with the query's terms in <mark>."""
    if not chunk_ids:
        return {}
    terms = list(query_terms(query))
    with connection.cursor() as cursor:
        if terms:
            cursor.execute(
                """
                SELECT c.id, ts_headline('english', c.text,
                       array_to_string(ARRAY(SELECT quote_literal(t) FROM unnest(%s::text[]) t), ' | ')::tsquery,
                       %s)
                  FROM knowledge_chunk c WHERE c.id = ANY(%s)
                """,
                [
                    terms,
                    f"StartSel={MARK_START}, StopSel={MARK_END}, MaxWords={max_words}, MinWords={max_words // 2}, "
                    'MaxFragments=2, FragmentDelimiter=" … "',
                    list(chunk_ids),
                ],
            )
        else:
            cursor.execute(
                "SELECT c.id, left(c.text, %s) FROM knowledge_chunk c WHERE c.id = ANY(%s)",
                [max_words * 8, list(chunk_ids)],
            )
        rows = cursor.fetchall()
    return {
        int(chunk_id): escape(text).replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")
        for chunk_id, text in rows
    }
