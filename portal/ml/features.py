"""Features: TF-IDF of the text plus the local embedding model's vector (knowledge/embeddings.py).

The saved artifact holds only scikit-learn objects and arrays; the embedding is computed at prediction
time by the same local model that indexes the knowledge bases (and a question's embedding is the one
retrieval computes anyway: `embed_query` keeps recent queries, so the router adds no second encode).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse

EMBEDDING_WEIGHT = 1.0
MAX_QUERY_CHARS = 1000  # what knowledge retrieval embeds of a question (knowledge.selectors.MAX_QUERY_LENGTH)


def word_vectorizer() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, max_features=20000, lowercase=True)


def char_vectorizer() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True, max_features=50000)


def embed(texts: Sequence[str], *, query: bool = False) -> np.ndarray:
    from knowledge import embeddings

    if query and len(texts) == 1:
        return np.asarray([embeddings.embed_query(texts[0].strip()[:MAX_QUERY_CHARS])], dtype=np.float32)
    return embeddings.embed_texts([text.strip()[:MAX_QUERY_CHARS] for text in texts], role="query", batch_size=32)


def combine(tfidf_matrix: Any, embedding_matrix: np.ndarray | None, weight: float = EMBEDDING_WEIGHT) -> Any:
    if embedding_matrix is None:
        return sparse.csr_matrix(tfidf_matrix)
    return sparse.hstack([tfidf_matrix, sparse.csr_matrix(embedding_matrix * weight)], format="csr")


def artifact_features(artifact: dict[str, Any], texts: Sequence[str], embeddings: np.ndarray | None) -> Any:
    """The feature matrix a saved text model expects."""
    blocks = [artifact["tfidf"].transform(list(texts))]
    if artifact.get("char_tfidf") is not None:
        blocks.append(artifact["char_tfidf"].transform(list(texts)))
    matrix = sparse.hstack(blocks, format="csr") if len(blocks) > 1 else blocks[0]
    if artifact.get("uses_embedding"):
        if embeddings is None:
            embeddings = embed(texts)
        return combine(matrix, embeddings, float(artifact.get("embedding_weight", EMBEDDING_WEIGHT)))
    return sparse.csr_matrix(matrix)


def linear_probabilities(artifact: dict[str, Any], texts: Sequence[str], embeddings: np.ndarray | None) -> np.ndarray:
    """`classifier.predict_proba` of a logistic regression, computed block by block (the TF-IDF part
    sparse, the embedding part dense) without building the combined matrix: the same numbers (a test
    checks it) at a fraction of the per-call overhead, which matters for one question at a time."""
    classifier = artifact["classifier"]
    coef = classifier.coef_
    blocks = [artifact["tfidf"].transform(list(texts))]
    if artifact.get("char_tfidf") is not None:
        blocks.append(artifact["char_tfidf"].transform(list(texts)))
    scores = np.tile(classifier.intercept_, (len(texts), 1)).astype(np.float64)
    start = 0
    for block in blocks:
        width = block.shape[1]
        scores += np.asarray(block @ coef[:, start : start + width].T)
        start += width
    if artifact.get("uses_embedding"):
        if embeddings is None:
            embeddings = embed(texts)
        weight = float(artifact.get("embedding_weight", EMBEDDING_WEIGHT))
        scores += (np.asarray(embeddings, dtype=np.float64) * weight) @ coef[:, start:].T
    if scores.shape[1] == 1:  # binary: one column of scores for classes_[1]
        positive = 1.0 / (1.0 + np.exp(-scores[:, 0]))
        return np.column_stack([1.0 - positive, positive])
    scores -= scores.max(axis=1, keepdims=True)
    exponentials = np.exp(scores)
    return np.asarray(exponentials / exponentials.sum(axis=1, keepdims=True))
