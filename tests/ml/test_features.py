"""The block-wise prediction used for one question gives exactly what scikit-learn's predict_proba gives."""

from __future__ import annotations

import numpy as np
import pytest

from portal.ml import features, training

TEXTS = [f"{word} question number {n}" for n in range(12) for word in ("refund", "compare", "draft")]
LABELS = [label for _ in range(12) for label in ("routine", "analyze", "draft")]


@pytest.mark.parametrize(
    ("labels", "char_ngrams", "with_embedding"),
    [(LABELS, False, True), ([("injection" if label == "analyze" else "benign") for label in LABELS], True, False)],
)
def test_linear_probabilities_equal_predict_proba(labels: list[str], char_ngrams: bool, with_embedding: bool) -> None:
    rng = np.random.default_rng(7)
    embeddings = rng.standard_normal((len(TEXTS), 384)).astype(np.float32) if with_embedding else None
    dataset = training.Dataset(labels=list(labels), texts=list(TEXTS), embeddings=embeddings)
    classes = sorted(set(labels))
    artifact = training._fit_text(dataset, np.arange(len(TEXTS)), classes, char_ngrams=char_ngrams)
    queries = ["refund question number 99", "please compare these", "draft a note"]
    vectors = rng.standard_normal((3, 384)).astype(np.float32) if with_embedding else None

    expected = artifact["classifier"].predict_proba(features.artifact_features(artifact, queries, vectors))
    assert np.allclose(features.linear_probabilities(artifact, queries, vectors), expected, atol=1e-12)
