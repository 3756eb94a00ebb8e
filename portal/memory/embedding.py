"""Memory vectors come from the same local model as the knowledge chunks (knowledge.embeddings)."""

from __future__ import annotations

import numpy as np


def embed_texts(texts: list[str]) -> np.ndarray:
    from knowledge.embeddings import embed_texts as knowledge_embed_texts

    return knowledge_embed_texts(list(texts))


def embed_query(text: str) -> np.ndarray:
    """Through knowledge's query cache: the assistant embeds each question once for both searches."""
    from knowledge.embeddings import embed_query as knowledge_embed_query

    return knowledge_embed_query(text)
