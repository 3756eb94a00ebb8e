"""Search latency at 10k and 100k chunks (or a million) with a permission filter active.

    manage.py bench_search [--sizes 10000,100000,1000000] [--queries 200] [--keep | --reuse] [--ranker] [--json]

Synthetic chunks (Zipf-distributed words, clustered unit vectors) are spread over ten knowledge bases;
the benchmark user sees five of them through a role, and a tenth of the documents are restricted to a
role the user lacks. Every query runs both legs (BM25 and HNSW kNN) with that filter in SQL and fuses
them; the query embedding is computed beforehand (its cost is reported separately).

Per size it also reports the time to load the increment (as a bulk load: the HNSW and postings (term, tf)
indexes dropped, then built again as the migrations defined them, timed apart), the sizes of the HNSW index,
the chunk table and the postings on disk, the server's memory settings, and the vector leg's recall@50
against an exact search (the same filtered query with index scans off, so PostgreSQL computes every visible
distance), with and without pgvector's iterative scan. `--ranker` also trains the rankers of the bases the
user reads and times one-base searches with and without them (issue 18).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction
from tqdm import tqdm

from knowledge import embeddings, ranking, search, services
from knowledge.bench import evaluation
from knowledge.models import Chunk, Document, DocumentStatus, KnowledgeBase
from portal.core.parallel import parallel_reads_possible

PREFIX = "bench: "
KNOWLEDGE_BASES = 10
CHUNKS_PER_DOCUMENT = 20
VOCABULARY = 20_000
WORDS_PER_CHUNK = 80
# Vectors shaped like MiniLM's (see EmbeddingLike): topics, subtopics within them, a shared direction
TOPICS, SUBTOPICS = 20, 10
SHARED, TOPIC, SUBTOPIC, NOISE = 0.45, 0.6, 0.5, 0.8


class Command(BaseCommand):
    help = "Measure permission-filtered hybrid search latency on synthetic corpora."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sizes", default="10000,100000")
        parser.add_argument("--queries", type=int, default=200)
        parser.add_argument("--keep", action="store_true", help="keep the synthetic knowledge bases")
        parser.add_argument(
            "--reuse",
            action="store_true",
            help="measure the corpus a --keep run left, at its size only, instead of building anew",
        )
        parser.add_argument(
            "--maintenance-work-mem",
            default="4GB",
            help="for building the indexes after loading (the HNSW graph of 1M chunks needs about 3 GB)",
        )
        parser.add_argument("--build-workers", type=int, default=1, help="parallel maintenance workers")
        parser.add_argument(
            "--ranker",
            action="store_true",
            help="also train the rankers of the bases the user reads and time searches in one base with and "
            "without them, alternately (hybrid_ranker_p95_ms_<size>, ranker_p95_ratio_<size>)",
        )
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        rng = np.random.default_rng(7)
        user, group = self._bench_user()
        figures: dict[str, Any] = {}
        query_texts = [" ".join(_words(rng, 3)) for _ in range(options["queries"])]
        started = time.perf_counter()
        embeddings.embed_texts(["warm up"])
        started = time.perf_counter()
        for text in query_texts[:50]:
            embeddings.embed_query(text, cache=False)
        figures["query_embedding_ms"] = round((time.perf_counter() - started) * 1000 / 50, 2)
        vectors = EmbeddingLike(rng)
        query_vectors = vectors.sample(rng, len(query_texts))
        loaded = 0
        sizes = sorted(int(value) for value in options["sizes"].split(",") if value)
        existing = list(KnowledgeBase.objects.filter(name__startswith=PREFIX).order_by("name"))
        if options["reuse"] and len(existing) == KNOWLEDGE_BASES:
            bases = existing
            loaded = Chunk.objects.filter(knowledge_base__in=bases).count()
            sizes = [loaded]
        else:
            self._drop()
            bases = [
                services.knowledge_base_create(actor=None, name=f"{PREFIX}{index}") for index in range(KNOWLEDGE_BASES)
            ]
            for index, knowledge_base in enumerate(bases):
                if index % 2 == 0:
                    services.knowledge_base_grant(actor=None, knowledge_base=knowledge_base, level="view", group=group)
        other_role, _ = Group.objects.get_or_create(name="bench: other role")
        for size in sizes:
            label = f"{size // 1000}k" if size >= 1000 else str(size)
            if size > loaded:
                load_started = time.perf_counter()
                with _indexes_dropped(options["maintenance_work_mem"], options["build_workers"], figures, label):
                    self._load(rng, bases, other_role, vectors, size - loaded, options["json"])
                    loaded_at = time.perf_counter()
                    figures[f"load_seconds_{label}"] = round(loaded_at - load_started, 1)
                    figures[f"load_chunks_per_second_{label}"] = round(
                        (size - loaded) / max(1e-9, loaded_at - load_started)
                    )
                figures[f"load_and_build_seconds_{label}"] = round(time.perf_counter() - load_started, 1)
            loaded = size
            acl = search.acl_for(user)
            with connection.cursor() as cursor:
                # as autovacuum would after a bulk load: statistics, and the visibility map that lets the
                # BM25 leg answer from its index alone
                cursor.execute("VACUUM ANALYZE knowledge_chunk")
                cursor.execute("VACUUM ANALYZE knowledge_posting")
                cursor.execute("ANALYZE knowledge_termstatistic")
            for text, vector in zip(query_texts[:10], query_vectors[:10], strict=True):  # warm caches
                search.hybrid_search(text, acl, 10, query_vector=vector)
            latencies, lexical_ms, vector_ms, returned = [], [], [], []
            for text, vector in zip(query_texts, query_vectors, strict=True):
                # What retrieve() runs: the user's permissions resolved, then both legs and the fusion
                # (in parallel on two connections unless KNOWLEDGE_SEARCH_PARALLEL_LEGS is off).
                t0 = time.perf_counter()
                fused = search.hybrid_search(text, search.acl_for(user), 10, query_vector=vector)
                latencies.append((time.perf_counter() - t0) * 1000)
                # each leg alone, one after the other
                t1 = time.perf_counter()
                search.lexical_search(text, acl, 50)
                t2 = time.perf_counter()
                vectorial = search.vector_search(vector, acl, 50)
                vector_ms.append((time.perf_counter() - t2) * 1000)
                lexical_ms.append((t2 - t1) * 1000)
                returned.append(len(vectorial))
            figures[f"hybrid_p50_ms_{label}"] = round(evaluation.percentile(latencies, 50), 2)
            figures[f"hybrid_p95_ms_{label}"] = round(evaluation.percentile(latencies, 95), 2)
            figures[f"hybrid_p99_ms_{label}"] = round(evaluation.percentile(latencies, 99), 2)
            figures[f"bm25_p95_ms_{label}"] = round(evaluation.percentile(lexical_ms, 95), 2)
            figures[f"vector_p95_ms_{label}"] = round(evaluation.percentile(vector_ms, 95), 2)
            figures[f"vector_rows_returned_min_{label}"] = int(min(returned))
            figures[f"visible_share_{label}"] = round(
                Chunk.objects.filter(knowledge_base__in=bases[::2]).count() / max(1, loaded), 3
            )
            recall_started = time.perf_counter()
            recalls = _vector_recalls(acl, query_vectors[: min(50, len(query_vectors))])
            figures[f"vector_recall_at_50_{label}"] = recalls["recall"]
            # the same without pgvector 0.8's iterative scan: the walk stops after ef_search candidates, of
            # which the permission filter keeps about half
            figures[f"vector_recall_at_50_no_iterative_scan_{label}"] = recalls["recall_no_iterative_scan"]
            figures[f"vector_rows_returned_min_no_iterative_scan_{label}"] = recalls["rows_min_no_iterative_scan"]
            figures[f"recall_seconds_{label}"] = round(time.perf_counter() - recall_started, 1)
            figures.update({f"{name}_{label}": value for name, value in _sizes_mb().items()})
            if options["ranker"]:
                figures.update(_ranker_latency(user, bases[::2], query_texts, query_vectors, label))
            del fused
        if not options["keep"] and not options["reuse"]:
            self._drop()
        figures["parallel_legs"] = parallel_reads_possible()
        figures.update(_server_memory())
        figures["note"] = (
            "2-core machine shared with other work; hybrid_* include resolving the user's permissions, "
            "not the query embedding"
        )
        if options["json"]:
            self.stdout.write(json.dumps(figures, indent=2))
        else:
            for name, value in figures.items():
                self.stdout.write(f"{name}: {value}")

    def _bench_user(self) -> tuple[User, Group]:
        group, _ = Group.objects.get_or_create(name="bench: readers")
        user, _ = User.objects.get_or_create(username="bench-search-user", defaults={"is_active": False})
        user.groups.add(group)
        return user, group

    def _drop(self) -> None:
        for knowledge_base in KnowledgeBase.objects.filter(name__startswith=PREFIX):
            evaluation.knowledge_base_drop(knowledge_base.name)

    def _load(
        self,
        rng: np.random.Generator,
        bases: list[KnowledgeBase],
        other_role: Group,
        vectors: EmbeddingLike,
        count: int,
        quiet: bool,
    ) -> None:
        """Add `count` chunks as an operator bulk-loads: without the indexes that are cheaper to build once
        (see _indexes_dropped), each chunk's BM25 length computed before its insert (no row rewritten after),
        postings inserted from one tsvector pass per batch, the statistics applied per batch."""
        documents_needed = max(1, count // CHUNKS_PER_DOCUMENT)
        bar = tqdm(total=count, desc="synthetic chunks", unit="chunk", disable=quiet)
        made = 0
        while made < count:
            with transaction.atomic():
                documents = Document.objects.bulk_create(
                    [
                        Document(
                            knowledge_base=bases[int(rng.integers(0, len(bases)))],
                            title=" ".join(_words(rng, 4)),
                            original_filename="synthetic.txt",
                            sha256="",
                            status=DocumentStatus.READY,
                            active_generation=1,
                        )
                        for _ in range(min(LOAD_BATCH_DOCUMENTS, documents_needed))
                    ]
                )
                restricted = [document for document in documents if rng.random() < 0.1]
                Document.restricted_to_roles.through.objects.bulk_create(
                    [Document.restricted_to_roles.through(document_id=d.pk, group_id=other_role.pk) for d in restricted]
                )
                drafts: list[tuple[Document, int, str]] = []
                for document in documents:
                    for position in range(CHUNKS_PER_DOCUMENT):
                        if made + len(drafts) >= count:
                            break
                        drafts.append((document, position, " ".join(_words(rng, WORDS_PER_CHUNK))))
                sampled = vectors.sample(rng, len(drafts))
                # the lexical text as services.LEXICAL_TEXT_SQL builds it (title, heading path, text)
                lengths = services.lexical_lengths([f"{document.title}  {text}" for document, _, text in drafts])
                ids = _chunks_copy(
                    [
                        (document.pk, document.knowledge_base_id, position, text, vector, length)
                        for (document, position, text), vector, length in zip(drafts, sampled, lengths, strict=True)
                    ]
                )
                services.postings_build("c.id = ANY(%s)", [ids], replace=False)  # new chunks: nothing to replace
                services._lexical_statistics_lock()
                services._statistics_apply("c.id = ANY(%s)", [ids], 1)
            made += len(ids)
            bar.update(len(ids))
        bar.close()


def _chunks_copy(rows: list[tuple[int, int, int, str, np.ndarray, int]]) -> list[int]:
    """Insert chunks (document, knowledge base, position, text, embedding, BM25 length; generation 1) with
    COPY in binary, the vectors as pgvector's binary format: an INSERT through the ORM spends more time
    formatting 384 floats as text per chunk in Python than PostgreSQL spends storing the row."""
    from pgvector.psycopg.vector import register_vector_info
    from psycopg.types import TypeInfo
    from psycopg.types.json import Jsonb

    connection.ensure_connection()
    raw = connection.connection
    with raw.cursor() as cursor:
        # on this cursor only: the ORM's own cursors keep passing vectors as text
        register_vector_info(cursor, TypeInfo.fetch(raw, "vector"))
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence('knowledge_chunk', 'id')) FROM generate_series(1, %s)",
            [len(rows)],
        )
        ids = [int(chunk_id) for (chunk_id,) in cursor.fetchall()]
        columns = "id, document_id, knowledge_base_id, generation, position, text, heading_path, token_count, "
        columns += "embedding, lexical_length, page_starts"
        with cursor.copy(f"COPY knowledge_chunk ({columns}) FROM STDIN (FORMAT BINARY)") as copy:  # noqa: S608
            copy.set_types(
                ["int8", "int8", "int8", "int4", "int4", "text", "varchar", "int4", "vector", "int4", "jsonb"]
            )
            for chunk_id, (document_id, base_id, position, text, vector, length) in zip(ids, rows, strict=True):
                copy.write_row(
                    (chunk_id, document_id, base_id, 1, position, text, "", WORDS_PER_CHUNK, vector, length, Jsonb([]))
                )
    return ids


# Chunks per loading transaction: large enough that per-statement costs vanish, small enough for memory.
LOAD_BATCH_DOCUMENTS = 250
# Indexes dropped while loading and built again afterwards: each row-by-row insert into the HNSW graph
# searches it (230-408 chunks/s at 100k), and the postings' (term, tf) B-tree takes its entries in random
# order. The unique (chunk, term) index stays: its entries arrive in order, and postings_build needs it.
BULK_LOAD_INDEXES = ("knowledge_chunk_embedding_hnsw", "knowledge_posting_term_tf")


@contextmanager
def _indexes_dropped(maintenance_work_mem: str, workers: int, figures: dict[str, Any], label: str) -> Iterator[None]:
    """Drop BULK_LOAD_INDEXES and build them again, from their own definitions (pg_get_indexdef: the same
    name, opclass, m and ef_construction as the migrations made, so the searches get production's plans),
    with `maintenance_work_mem` for the build and `workers` parallel maintenance workers. Records
    index_build_seconds_<label> (HNSW) and postings_index_build_seconds_<label>, and what the server noticed
    meanwhile (pgvector says when the HNSW graph outgrows maintenance_work_mem and the build slows down to
    building on disk) as index_build_notices_<label>; rebuilt even on failure."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_class c WHERE c.relkind = 'i' AND c.relname = ANY(%s)",
            [list(BULK_LOAD_INDEXES)],
        )
        definitions = dict(cursor.fetchall())
        for name in definitions:
            cursor.execute(f'DROP INDEX "{name}"')
    try:
        yield
    finally:
        notices: list[str] = []

        def noticed(diagnostic: Any) -> None:
            notices.append(str(diagnostic.message_primary))

        connection.connection.add_notice_handler(noticed)
        with connection.cursor() as cursor:
            cursor.execute("SET maintenance_work_mem = %s", [maintenance_work_mem])
            cursor.execute(f"SET max_parallel_maintenance_workers = {int(workers)}")
            for name, definition in definitions.items():
                started = time.perf_counter()
                cursor.execute(definition)
                seconds = round(time.perf_counter() - started, 1)
                key = "index_build_seconds" if name == BULK_LOAD_INDEXES[0] else "postings_index_build_seconds"
                figures[f"{key}_{label}"] = seconds
            cursor.execute("RESET maintenance_work_mem")
            cursor.execute("RESET max_parallel_maintenance_workers")
        connection.connection.remove_notice_handler(noticed)
        figures[f"index_build_notices_{label}"] = notices


class EmbeddingLike:
    """Unit vectors with the neighbourhoods of real sentence embeddings, not of uniform noise.

    MiniLM's vectors of 1,500 SciFact abstracts have a median cosine of 0.15 between any two (they share a
    direction) and 0.63, 0.48 and 0.39 to the 1st, 10th and 50th nearest; uniform random vectors (the
    previous generator) have 0.0 and about 0.17 / 0.13 / 0.09, the hardest case there is for an HNSW graph.
    A sum of a shared direction, one of TOPICS topics, one of its SUBTOPICS and noise, with the weights above,
    gives 0.14 and 0.59 / 0.45 / 0.37 at the same count. Chunks and queries are drawn alike."""

    def __init__(self, rng: np.random.Generator) -> None:
        dimension = embeddings.EMBEDDING_DIMENSION
        self.shared = _unit(rng.normal(size=dimension))
        self.topics = _unit(rng.normal(size=(TOPICS, dimension)))
        self.subtopics = _unit(rng.normal(size=(TOPICS, SUBTOPICS, dimension)))

    def sample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        topic, subtopic = rng.integers(0, TOPICS, count), rng.integers(0, SUBTOPICS, count)
        dimension = self.shared.shape[0]
        noise = rng.normal(scale=NOISE / np.sqrt(dimension), size=(count, dimension))
        mixed = SHARED * self.shared + TOPIC * self.topics[topic] + SUBTOPIC * self.subtopics[topic, subtopic]
        return _unit(mixed + noise)


_ZIPF_CACHE: dict[str, Any] = {}
RECALL_K = 50


def _vector_recalls(acl: search.Acl, vectors: np.ndarray) -> dict[str, Any]:
    """Mean share of the exact 50 nearest visible chunks that the HNSW leg (as live search runs it) returns,
    and the same with hnsw.iterative_scan off (with the fewest rows it returned), against one exact search
    per vector."""
    shares: dict[bool, list[float]] = {True: [], False: []}
    rows = []
    for vector in vectors:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_indexscan = off")  # no HNSW walk: every visible distance, exactly
            cursor.execute("SET LOCAL enable_bitmapscan = off")
            exact = {chunk_id for chunk_id, _ in search.vector_search(vector, acl, RECALL_K)}
        approximate = {chunk_id for chunk_id, _ in search.vector_search(vector, acl, RECALL_K)}
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL hnsw.iterative_scan = off")
            stopping = {chunk_id for chunk_id, _ in search.vector_search(vector, acl, RECALL_K)}
        shares[True].append(len(approximate & exact) / max(1, len(exact)))
        shares[False].append(len(stopping & exact) / max(1, len(exact)))
        rows.append(len(stopping))
    return {
        "recall": round(float(np.mean(shares[True])), 4) if rows else 0.0,
        "recall_no_iterative_scan": round(float(np.mean(shares[False])), 4) if rows else 0.0,
        "rows_min_no_iterative_scan": min(rows, default=0),
    }


def _ranker_latency(
    user: User, bases: list[KnowledgeBase], texts: list[str], vectors: np.ndarray, label: str
) -> dict[str, Any]:
    """Train each base's ranker (ranking.ranker_train, as the worker does), then time each query searched in
    one of the bases (a ranker applies only to candidates from one base) with the ranker and without it,
    alternately and in alternating order, so both see the same caches and the same load of the machine."""
    figures: dict[str, Any] = {}
    started = time.perf_counter()
    active = []
    for knowledge_base in bases:
        report = ranking.ranker_train(knowledge_base.pk) or {"status": "no trainer registered"}
        figures[f"ranker_status_{knowledge_base.pk}_{label}"] = report.get("status")
        if ranking.ranker_for(knowledge_base.pk) is not None:
            active.append(knowledge_base)
    figures[f"ranker_training_seconds_{label}"] = round(time.perf_counter() - started, 1)
    figures[f"ranker_active_bases_{label}"] = len(active)
    if not active:
        return figures
    plain: list[float] = []
    ranked: list[float] = []
    for index, (text, vector) in enumerate(zip(texts, vectors, strict=True)):
        scope = [active[index % len(active)].pk]
        if index < 10:  # warm up: the rankers' files loaded, caches filled
            search.hybrid_search(text, search.acl_for(user, scope), 10, query_vector=vector, ranker=True)
        for use_ranker in (True, False) if index % 2 == 0 else (False, True):
            t0 = time.perf_counter()
            search.hybrid_search(text, search.acl_for(user, scope), 10, query_vector=vector, ranker=use_ranker)
            (ranked if use_ranker else plain).append((time.perf_counter() - t0) * 1000)
    figures[f"hybrid_one_base_p50_ms_{label}"] = round(evaluation.percentile(plain, 50), 2)
    figures[f"hybrid_one_base_p95_ms_{label}"] = round(evaluation.percentile(plain, 95), 2)
    figures[f"hybrid_ranker_p50_ms_{label}"] = round(evaluation.percentile(ranked, 50), 2)
    figures[f"hybrid_ranker_p95_ms_{label}"] = round(evaluation.percentile(ranked, 95), 2)
    figures[f"ranker_p95_ratio_{label}"] = round(
        evaluation.percentile(ranked, 95) / max(1e-9, evaluation.percentile(plain, 95)), 3
    )
    return figures


def _server_memory() -> dict[str, Any]:
    """What bounds the working set: the server's buffers and the machine's memory."""
    figures: dict[str, Any] = {}
    with connection.cursor() as cursor:
        for name in ("shared_buffers", "work_mem", "maintenance_work_mem", "effective_cache_size"):
            cursor.execute(f"SHOW {name}")
            figures[f"server_{name}"] = cursor.fetchone()[0]
    figures["machine_memory_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1)
    return figures


def _sizes_mb() -> dict[str, float]:
    """On-disk sizes: the HNSW index, the chunk table with its other indexes, the postings (BM25), all."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT pg_relation_size('knowledge_chunk_embedding_hnsw'),
                      pg_total_relation_size('knowledge_chunk'),
                      pg_total_relation_size('knowledge_posting'),
                      pg_database_size(current_database())"""
        )
        hnsw, chunks, postings, database = cursor.fetchone()
    mb = 1024 * 1024
    return {
        "hnsw_index_mb": round(hnsw / mb, 1),
        "chunk_table_mb": round(chunks / mb, 1),
        "postings_mb": round(postings / mb, 1),
        "database_mb": round(database / mb, 1),
    }


def _words(rng: np.random.Generator, count: int) -> list[str]:
    ranks = np.minimum(rng.zipf(1.1, size=count), VOCABULARY)
    return [f"w{int(rank)}x" for rank in ranks]


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    unit: np.ndarray = vectors / np.maximum(norms, 1e-12)
    return unit
