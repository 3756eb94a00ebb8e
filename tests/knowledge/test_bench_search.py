"""bench_search at a toy size: every figure is there, and the vector leg's recall is measured, not assumed."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from knowledge.models import KnowledgeBase

pytestmark = pytest.mark.django_db(transaction=True)


def test_bench_search_reports_latency_recall_load_time_and_sizes_per_size() -> None:
    out = StringIO()
    call_command("bench_search", "--sizes", "400,800", "--queries", "12", "--json", stdout=out)

    figures = json.loads(out.getvalue())
    for label in ("400", "800"):
        assert figures[f"hybrid_p50_ms_{label}"] <= figures[f"hybrid_p95_ms_{label}"]
        assert figures[f"hybrid_p95_ms_{label}"] <= figures[f"hybrid_p99_ms_{label}"]
        assert 0.0 <= figures[f"vector_recall_at_50_{label}"] <= 1.0
        assert figures[f"load_seconds_{label}"] > 0 and figures[f"load_chunks_per_second_{label}"] > 0
        assert 0 < figures[f"hnsw_index_mb_{label}"] <= figures[f"database_mb_{label}"]
        assert figures[f"chunk_table_mb_{label}"] > 0 and figures[f"postings_mb_{label}"] > 0
    # a few hundred chunks: HNSW with ef_search >= 50 finds (nearly) all of the exact neighbours
    assert figures["vector_recall_at_50_800"] >= 0.9
    assert not KnowledgeBase.objects.filter(name__startswith="bench: ").exists()  # dropped without --keep


def test_the_synthetic_vectors_have_neighbourhoods_like_sentence_embeddings() -> None:
    """What the generator's docstring claims (MiniLM on SciFact: median 0.15, nearest 0.63, 50th 0.39)."""
    import numpy as np

    from knowledge.management.commands.bench_search import EmbeddingLike

    rng = np.random.default_rng(3)
    vectors = EmbeddingLike(rng).sample(rng, 1500)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -1.0)
    nearest = np.sort(similarity, axis=1)[:, ::-1]
    assert 0.10 <= float(np.median(similarity[similarity > -1.0])) <= 0.20
    assert 0.50 <= float(np.median(nearest[:, 0])) <= 0.70
    assert 0.30 <= float(np.median(nearest[:, 49])) <= 0.45


def test_bench_search_rebuilds_the_indexes_it_drops_for_loading_exactly_as_the_migrations_made_them() -> None:
    from django.db import connection

    def definitions() -> dict[str, str]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT relname, pg_get_indexdef(oid) FROM pg_class WHERE relname = ANY(%s)",
                [["knowledge_chunk_embedding_hnsw", "knowledge_posting_term_tf"]],
            )
            return dict(cursor.fetchall())

    before = definitions()
    out = StringIO()
    call_command("bench_search", "--sizes", "300", "--queries", "4", "--json", stdout=out)

    figures = json.loads(out.getvalue())
    assert definitions() == before and len(before) == 2
    assert "m='16'" in before["knowledge_chunk_embedding_hnsw"]
    assert figures["index_build_seconds_300"] >= 0 and figures["postings_index_build_seconds_300"] >= 0
    assert figures["vector_rows_returned_min_no_iterative_scan_300"] <= 50
    assert figures["server_shared_buffers"] and figures["machine_memory_gb"] > 0


def test_the_bulk_loaded_chunks_have_the_lengths_and_postings_ingestion_gives_them() -> None:
    """The COPY path sets lexical_length before the insert; it must equal what services computes."""
    from django.db import connection

    from knowledge import services
    from knowledge.models import Chunk, Posting

    call_command("bench_search", "--sizes", "200", "--queries", "2", "--keep", "--json", stdout=StringIO())

    chunks = Chunk.objects.filter(knowledge_base__name__startswith="bench: ")
    stored = dict(chunks.values_list("pk", "lexical_length"))
    services.lexical_lengths_update("c.id = ANY(%s)", [list(stored)])
    assert dict(chunks.values_list("pk", "lexical_length")) == stored
    with connection.cursor() as cursor:
        cursor.execute("SELECT chunk_id, SUM(tf) FROM knowledge_posting GROUP BY chunk_id")
        assert dict(cursor.fetchall()) == stored
    assert Posting.objects.count() > 0


def test_bench_search_times_the_ranker_against_the_same_search_without_it() -> None:
    out = StringIO()
    call_command("bench_search", "--sizes", "1000", "--queries", "12", "--ranker", "--json", stdout=out)

    figures = json.loads(out.getvalue())
    assert figures["ranker_active_bases_1k"] >= 1  # the ranker was trained, active and used
    assert figures["hybrid_ranker_p50_ms_1k"] <= figures["hybrid_ranker_p95_ms_1k"]
    ratio = figures["hybrid_ranker_p95_ms_1k"] / figures["hybrid_one_base_p95_ms_1k"]
    assert figures["ranker_p95_ratio_1k"] == pytest.approx(ratio, rel=0.01)  # of the unrounded p95s


def test_bench_search_reports_when_the_hnsw_graph_outgrew_maintenance_work_mem() -> None:
    out = StringIO()
    call_command(
        "bench_search", "--sizes", "2000", "--queries", "2", "--maintenance-work-mem", "1MB", "--json", stdout=out
    )

    notices = json.loads(out.getvalue())["index_build_notices_2k"]
    assert any("maintenance_work_mem" in notice for notice in notices)
