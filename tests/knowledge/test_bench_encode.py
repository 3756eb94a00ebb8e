"""`manage.py bench_encode`: the models take turns on the same texts; an unknown model is refused."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import numpy as np
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from knowledge import embeddings


def test_it_refuses_an_unknown_model():
    with pytest.raises(CommandError, match="Unknown embedding model 'e5-large'"):
        call_command("bench_encode", "--models", "minilm,e5-large")


def test_the_models_take_turns_on_the_same_texts(monkeypatch, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "\n".join(json.dumps({"_id": str(i), "title": f"T{i}", "text": f"Abstract number {i}."}) for i in range(5)),
        encoding="utf-8",
    )
    calls: list[tuple[str, int]] = []

    def fake_embed(texts: list[str], **_options: Any) -> np.ndarray:
        calls.append((settings.KNOWLEDGE_EMBEDDING_MODEL, len(texts)))
        return np.zeros((len(texts), embeddings.EMBEDDING_DIMENSION), dtype=np.float32)

    monkeypatch.setattr(embeddings, "embed_texts", fake_embed)
    out = StringIO()
    call_command("bench_encode", "--corpus", str(corpus), "--texts", "4", "--repeat", "2", "--json", stdout=out)
    figures = json.loads(out.getvalue())
    assert figures["texts"] == 4
    assert [model for model, count in calls if count == 4] == ["minilm", "e5-small", "minilm", "e5-small"]
    assert figures["minilm_over_minilm"] == 1.0
    assert len(figures["e5-small_chunks_per_s"]) == 2
