"""Ingestion rate of the full pipeline against the embedding model's bare encode rate, in one run.

    manage.py bench_ingest [--path ../shared/data/business_kb/contoso] [--json]

The pipeline (upload, extract, chunk, embed, store, index, activate) runs on the real PDFs; the bare
rate is sentence-transformers' encode() of the very same chunk texts with the same backend and batch
size, measured before and after the pipeline run (the mean is used, since the CPU is shared).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from knowledge import embeddings, services
from knowledge.bench import evaluation
from knowledge.models import Chunk, DocumentStatus

KNOWLEDGE_BASE = "bench: ingest"
DEFAULT_PATH = Path(settings.BASE_DIR).parent / "shared" / "data" / "business_kb" / "contoso"


class Command(BaseCommand):
    help = "Measure ingestion chunks/s for real PDFs and the bare encode rate on the same chunks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--path", type=Path, default=DEFAULT_PATH)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        folder: Path = options["path"]
        files = sorted(folder.glob("*.pdf")) if folder.is_dir() else []
        if not files:
            raise CommandError(f"No PDF files in {folder}.")
        backend = embeddings.configured_backend()
        model = embeddings.get_model()
        batch = int(settings.KNOWLEDGE_EMBED_BATCH)
        evaluation.knowledge_base_drop(KNOWLEDGE_BASE)

        # A first untimed pass gives the chunk texts for the bare encode runs (and warms every cache).
        knowledge_base = evaluation.knowledge_base_fresh(KNOWLEDGE_BASE)
        self._ingest(knowledge_base, files)
        texts = [
            services.embedding_input(title, heading, text)
            for title, heading, text in Chunk.objects.filter(knowledge_base=knowledge_base)
            .order_by("document_id", "position")
            .values_list("document__title", "heading_path", "text")
        ]
        bare_before = self._bare(model, texts, batch)

        knowledge_base = evaluation.knowledge_base_fresh(KNOWLEDGE_BASE)
        started = time.perf_counter()
        chunks = self._ingest(knowledge_base, files)
        pipeline_seconds = time.perf_counter() - started
        bare_after = self._bare(model, texts, batch)
        evaluation.knowledge_base_drop(KNOWLEDGE_BASE)

        bare_rate = len(texts) / ((bare_before + bare_after) / 2)
        pipeline_rate = chunks / pipeline_seconds
        figures = {
            "files": len(files),
            "megabytes": round(sum(path.stat().st_size for path in files) / 1e6, 2),
            "chunks": chunks,
            "backend": backend,
            "pipeline_chunks_per_s": round(pipeline_rate, 1),
            "bare_encode_chunks_per_s": round(bare_rate, 1),
            "bare_encode_before_chunks_per_s": round(len(texts) / bare_before, 1),
            "bare_encode_after_chunks_per_s": round(len(texts) / bare_after, 1),
            "pipeline_over_bare": round(pipeline_rate / bare_rate, 3),
            "note": "2-core machine shared with other work",
        }
        if options["json"]:
            self.stdout.write(json.dumps(figures, indent=2))
        else:
            for name, value in figures.items():
                self.stdout.write(f"{name}: {value}")

    def _ingest(self, knowledge_base: Any, files: list[Path]) -> int:
        chunks = 0
        for path in files:
            document = services.document_upload(
                actor=None, knowledge_base=knowledge_base, filename=path.name, data=path.read_bytes()
            ).stored
            status = services.document_process(document_id=document.pk, generation=document.generation)
            document.refresh_from_db()
            if status != DocumentStatus.READY:
                raise CommandError(f"{path.name}: {document.error}")
            chunks += document.chunk_count
        return chunks

    def _bare(self, model: Any, texts: list[str], batch: int) -> float:
        started = time.perf_counter()
        model.encode(texts, batch_size=batch, normalize_embeddings=True, show_progress_bar=False)
        return time.perf_counter() - started
