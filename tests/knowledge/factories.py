from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterable
from typing import Any

import factory
from django.contrib.auth.models import Group

from knowledge import services
from knowledge.models import Document, KnowledgeBase
from knowledge.pdf import Line, write_text_pdf


class KnowledgeBaseFactory(factory.django.DjangoModelFactory[KnowledgeBase]):
    class Meta:
        model = KnowledgeBase

    name = factory.Sequence(lambda n: f"Knowledge base {n}")
    description = "Test knowledge base"


def grant(knowledge_base: KnowledgeBase, level: str, *, role: str | None = None, user: Any = None) -> None:
    services.knowledge_base_grant(
        actor=None,
        knowledge_base=knowledge_base,
        level=level,
        group=Group.objects.get(name=role) if role else None,
        user=user,
    )


def ready_document(
    knowledge_base: KnowledgeBase, filename: str, data: bytes, *, roles: Iterable[str] = (), title: str = ""
) -> Document:
    """Upload and process a document synchronously (as the worker would)."""
    result = services.document_upload(
        actor=None,
        knowledge_base=knowledge_base,
        filename=filename,
        data=data,
        title=title,
        restricted_roles=list(Group.objects.filter(name__in=list(roles))),
    )
    document = result.stored
    services.document_process(document_id=document.pk, generation=document.generation)
    document.refresh_from_db()
    return document


def pdf_bytes(pages: list[list[str]], title: str = "") -> bytes:
    return write_text_pdf([[Line(text) for text in page] for page in pages], title=title)


def docx_bytes(heading: str, paragraphs: list[str]) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading(heading, level=1)
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def encrypted_pdf_bytes() -> bytes:
    import pypdf

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(pdf_bytes([["Top secret salaries"]]))))
    writer.encrypt("a password", algorithm="AES-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def zip_bomb_docx_bytes(expanded: int) -> bytes:
    """A DOCX-looking zip whose one member expands to `expanded` bytes of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\0" * expanded)
    return buffer.getvalue()


def pdf_bomb_bytes() -> bytes:
    """A one-page PDF whose content stream inflates to 90 MB (over pypdf's 75 MB safety limit)."""
    pdf = pdf_bytes([["hello"]])
    payload = zlib.compress(b"BT /F1 11 Tf (x) Tj ET\n" + b" " * 90_000_000, 1)
    start = pdf.index(b"<< /Length")
    end = pdf.index(b"endstream", start) + len(b"endstream")
    stream = f"<< /Length {len(payload)} /Filter /FlateDecode >>".encode() + b"\nstream\n" + payload + b"\nendstream"
    return pdf[:start] + stream + pdf[end:]
