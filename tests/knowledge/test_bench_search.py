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
