"""Ingest a file or a folder of files into a knowledge base, with a progress bar.

manage.py ingest PATH --kb NAME [--create] [--queue]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from tqdm import tqdm

from knowledge import services
from knowledge.extraction import SUPPORTED_EXTENSIONS
from knowledge.models import DocumentStatus, KnowledgeBase


class Command(BaseCommand):
    help = "Upload and process every supported file under PATH into the knowledge base NAME."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--kb", required=True, help="knowledge base name")
        parser.add_argument("--create", action="store_true", help="create the knowledge base if it does not exist")
        parser.add_argument("--queue", action="store_true", help="leave processing to the Celery worker")

    def handle(self, *args: Any, **options: Any) -> None:
        root: Path = options["path"]
        if not root.exists():
            raise CommandError(f"{root} does not exist.")
        knowledge_base = KnowledgeBase.objects.filter(name=options["kb"]).first()
        if knowledge_base is None:
            if not options["create"]:
                raise CommandError(f"No knowledge base named {options['kb']!r} (use --create).")
            knowledge_base = services.knowledge_base_create(actor=None, name=options["kb"])
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        files = [p for p in files if p.suffix.lower() in SUPPORTED_EXTENSIONS]
        counts: dict[str, int] = {}
        for path in tqdm(files, desc="ingesting", unit="file"):
            size = path.stat().st_size
            data = None if size > services.max_upload_bytes() else path.read_bytes()
            with transaction.atomic():
                result = services.document_upload(
                    actor=None, knowledge_base=knowledge_base, filename=path.name, data=data, size=size
                )
            status = result.outcome
            if result.document is None:
                tqdm.write(f"{path}: not uploaded: {result.error}")
            elif result.outcome in {"created", "new_version"} and not options["queue"]:
                status = services.document_process(
                    document_id=result.document.pk, generation=result.document.generation
                )
                if status == DocumentStatus.FAILED:
                    result.document.refresh_from_db()
                    tqdm.write(f"{path}: failed: {result.document.error}")
            counts[status] = counts.get(status, 0) + 1
        summary = ", ".join(f"{name}: {count}" for name, count in sorted(counts.items())) or "no supported files"
        self.stdout.write(f"{len(files)} file(s) into {knowledge_base.name!r}: {summary}")
