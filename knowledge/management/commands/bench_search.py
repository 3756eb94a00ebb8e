"""Search latency at 10k and 100k chunks (or a million) with a permission filter active.

    manage.py bench_search [--sizes 10000,100000,1000000] [--queries 200] [--json]

Synthetic chunks (Zipf-distributed words, clustered unit vectors) are spread over ten knowledge bases;
the benchmark user sees five of them through a role, and a tenth of the documents are restricted to a
role the user lacks. Every query runs both legs (BM25 and HNSW kNN) with that filter in SQL and fuses
them; the query embedding is computed beforehand (its cost is reported separately).

Per size it also reports the time to load the increment (rows, postings and index upkeep), the sizes of the
HNSW index, the chunk table and the postings on disk, and the vector leg's recall@50 against an exact search
(the same filtered query with index scans off, so PostgreSQL computes every visible distance).
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction
from tqdm import tqdm

from knowledge import embeddings, search, services
from knowledge.bench import evaluation
from knowledge.models import Chunk, Document, DocumentStatus, KnowledgeBase

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
                self._load(rng, bases, other_role, vectors, size - loaded, options["json"])
                figures[f"load_seconds_{label}"] = round(time.perf_counter() - load_started, 1)
                figures[f"load_chunks_per_second_{label}"] = round(
                    (size - loaded) / max(1e-9, time.perf_counter() - load_started)
                )
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
            figures[f"vector_recall_at_50_{label}"] = _vector_recall(acl, query_vectors[: min(50, len(query_vectors))])
            figures.update({f"{name}_{label}": value for name, value in _sizes_mb().items()})
            del fused
        if not options["keep"] and not options["reuse"]:
            self._drop()
        figures["parallel_legs"] = search._legs_in_parallel()
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
        documents_needed = max(1, count // CHUNKS_PER_DOCUMENT)
        bar = tqdm(total=count, desc="synthetic chunks", unit="chunk", disable=quiet)
        batch_documents = 100
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
                        for _ in range(min(batch_documents, documents_needed))
                    ]
                )
                restricted = [document for document in documents if rng.random() < 0.1]
                Document.restricted_to_roles.through.objects.bulk_create(
                    [Document.restricted_to_roles.through(document_id=d.pk, group_id=other_role.pk) for d in restricted]
                )
                chunks: list[Chunk] = []
                for document in documents:
                    for position in range(CHUNKS_PER_DOCUMENT):
                        if made + len(chunks) >= count:
                            break
                        vector = vectors.sample(rng, 1)[0]
                        chunks.append(
                            Chunk(
                                document=document,
                                knowledge_base_id=document.knowledge_base_id,
                                generation=1,
                                position=position,
                                text=" ".join(_words(rng, WORDS_PER_CHUNK)),
                                token_count=WORDS_PER_CHUNK,
                                embedding=vector,
                            )
                        )
                created = Chunk.objects.bulk_create(chunks, batch_size=1000)
                ids = [chunk.pk for chunk in created]
                services.lexical_lengths_update("c.id = ANY(%s)", [ids])
                services.postings_build("c.id = ANY(%s)", [ids])
                services._lexical_statistics_lock()
                services._statistics_apply("c.id = ANY(%s)", [ids], 1)
            made += len(created)
            bar.update(len(created))
        bar.close()


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


def _vector_recall(acl: search.Acl, vectors: np.ndarray) -> float:
    """Mean share of the exact 50 nearest visible chunks that the HNSW leg (as live search runs it) returns."""
    shares = []
    for vector in vectors:
        approximate = {chunk_id for chunk_id, _ in search.vector_search(vector, acl, RECALL_K)}
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_indexscan = off")  # no HNSW walk: every visible distance, exactly
            cursor.execute("SET LOCAL enable_bitmapscan = off")
            exact = {chunk_id for chunk_id, _ in search.vector_search(vector, acl, RECALL_K)}
        shares.append(len(approximate & exact) / max(1, len(exact)))
    return round(float(np.mean(shares)), 4) if shares else 0.0


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
