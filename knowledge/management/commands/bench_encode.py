"""Bare encode rate of several embedding models on the same texts, alternating in one process.

    manage.py bench_encode [--models minilm,e5-small] [--texts 128] [--repeat 3] [--json]

The texts are the first SciFact abstracts as "title\\n\\nabstract" chunks of KNOWLEDGE_CHUNK_TOKENS tokens
counted by the first model's tokenizer, the same texts for every model (e5 adds its "passage: " prefix).
The models take turns, `--repeat` times, so load from other work on the machine falls on all of them
alike; the median and the ratio to the first model are reported.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test import override_settings

from knowledge import embeddings
from knowledge.bench.evaluation import CorpusDocument, corpus_chunk

DEFAULT_CORPUS = Path(settings.BASE_DIR).parent / "shared" / "data" / "retrieval" / "scifact" / "corpus.jsonl"


class Command(BaseCommand):
    help = "Compare the bare encode rate (chunks/s) of embedding models on the same texts, taking turns."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--models", default="minilm,e5-small")
        parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="a BEIR corpus.jsonl")
        parser.add_argument("--texts", type=int, default=128)
        parser.add_argument("--repeat", type=int, default=3)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        models = [name.strip() for name in options["models"].split(",") if name.strip()]
        unknown = [name for name in models if name not in embeddings.MODELS]
        if unknown or not models:
            raise CommandError(embeddings.ERROR_UNKNOWN_MODEL.format(model=",".join(unknown)))
        texts = self._texts(options["corpus"], options["texts"], models[0])
        batch = int(settings.KNOWLEDGE_EMBED_BATCH)
        for model in models:  # load (convert, export) and warm outside the timing
            with override_settings(KNOWLEDGE_EMBEDDING_MODEL=model):
                embeddings.embed_texts(texts[:2])
        rates: dict[str, list[float]] = {model: [] for model in models}
        for _round in range(options["repeat"]):
            for model in models:
                with override_settings(KNOWLEDGE_EMBEDDING_MODEL=model):
                    started = time.perf_counter()
                    embeddings.embed_texts(texts, batch_size=batch)
                    rates[model].append(len(texts) / (time.perf_counter() - started))
        first = statistics.median(rates[models[0]])
        figures: dict[str, Any] = {"texts": len(texts), "batch": batch, "backend": embeddings.configured_backend()}
        for model, values in rates.items():
            figures[f"{model}_chunks_per_s"] = [round(value, 1) for value in values]
            figures[f"{model}_median_chunks_per_s"] = round(statistics.median(values), 1)
            figures[f"{model}_over_{models[0]}"] = round(statistics.median(values) / first, 3)
        figures["note"] = "bare encode; the machine's other load shared by the models in turn"
        if options["json"]:
            self.stdout.write(json.dumps(figures, indent=2))
        else:
            for name, value in figures.items():
                self.stdout.write(f"{name}: {value}")

    def _texts(self, corpus: Path, count: int, model: str) -> list[str]:
        if not corpus.exists():
            raise CommandError(f"No corpus at {corpus}.")
        docs: list[CorpusDocument] = []
        with corpus.open(encoding="utf-8") as lines:
            for line in lines:
                row = json.loads(line)
                docs.append(CorpusDocument(key=str(row["_id"]), title=row.get("title", ""), text=row.get("text", "")))
                if len(docs) >= count:
                    break
        with override_settings(KNOWLEDGE_EMBEDDING_MODEL=model):
            drafts = corpus_chunk(
                docs, target_tokens=settings.KNOWLEDGE_CHUNK_TOKENS, overlap_tokens=settings.KNOWLEDGE_CHUNK_OVERLAP
            )
        texts = [
            f"{doc.title}\n\n{draft.text}" for doc, doc_drafts in zip(docs, drafts, strict=True) for draft in doc_drafts
        ]
        return texts[:count]
