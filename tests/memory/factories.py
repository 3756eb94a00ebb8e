from __future__ import annotations

import factory

from portal.memory import embedding
from portal.memory.models import MemoryItem


class MemoryItemFactory(factory.django.DjangoModelFactory[MemoryItem]):
    """A memory with its real embedding (the same local model the app uses)."""

    class Meta:
        model = MemoryItem

    text = factory.Sequence(lambda n: f"Memory statement number {n}.")
    kind = "fact"
    scope = "organisation"
    status = "approved"
    source = "staff"
    sensitivity = "internal"
    embedding = factory.LazyAttribute(lambda memory: embedding.embed_texts([memory.text])[0])
