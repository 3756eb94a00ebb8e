"""Re-embed every document with the configured embedding model and rebuild the BM25 statistics.

Run it after changing KNOWLEDGE_EMBEDDING_MODEL / _PATH / _NAME (a model with another dimension also needs
the vector column changed by a migration). Each document switches to its new chunks atomically.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from knowledge import embeddings, services
from knowledge.models import Document, DocumentStatus, KnowledgeBase


class Command(BaseCommand):
    help = "Re-process all documents (or those of one knowledge base) with the current embedding model."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--kb", help="only this knowledge base")
        parser.add_argument("--statistics-only", action="store_true", help="only rebuild the BM25 statistics")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["statistics_only"]:
            documents = Document.objects.exclude(file="").order_by("pk")
            bases = KnowledgeBase.objects.all()
            if options["kb"]:
                documents = documents.filter(knowledge_base__name=options["kb"])
                bases = bases.filter(name=options["kb"])
            failed = 0
            for document in tqdm(list(documents), desc="re-embedding", unit="doc"):
                document = services.document_reprocess(actor=None, document=document)
                status = services.document_process(document_id=document.pk, generation=document.generation)
                failed += status == DocumentStatus.FAILED
            bases.update(embedding_model=embeddings.model_name(), embedding_dimension=embeddings.EMBEDDING_DIMENSION)
            self.stdout.write(f"re-embedded {documents.count() - failed} document(s), {failed} failed")
        services.lexical_statistics_rebuild()
        self.stdout.write("BM25 statistics rebuilt")
