"""A very small PDF writer for text pages (demo content and tests; no PDF library that writes is installed).

Produces valid PDF 1.4: one content stream per page, the standard Helvetica fonts (no embedding),
WinAnsi text, word-wrapped lines, headings in bold.
"""

from __future__ import annotations

import textwrap
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

PAGE_WIDTH = 595  # A4 in points
PAGE_HEIGHT = 842
MARGIN = 56
BODY_SIZE = 11
HEADING_SIZE = 15
WRAP_COLUMNS = 92


@dataclass(frozen=True)
class Line:
    text: str
    heading: bool = False


def _escape(text: str) -> str:
    encoded = text.encode("cp1252", errors="replace").decode("latin-1")
    return encoded.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _page_stream(lines: Sequence[Line]) -> bytes:
    parts = ["BT"]
    y = PAGE_HEIGHT - MARGIN
    for line in lines:
        if line.heading:
            y -= 8
            parts.append(f"/F2 {HEADING_SIZE} Tf 1 0 0 1 {MARGIN} {y} Tm ({_escape(line.text)}) Tj")
            y -= HEADING_SIZE + 6
            continue
        wrapped = textwrap.wrap(line.text, WRAP_COLUMNS) or [""]
        for piece in wrapped:
            parts.append(f"/F1 {BODY_SIZE} Tf 1 0 0 1 {MARGIN} {y} Tm ({_escape(piece)}) Tj")
            y -= BODY_SIZE + 4
        y -= 6  # paragraph gap
    parts.append("ET")
    return "\n".join(parts).encode("latin-1")


def write_text_pdf(pages: Sequence[Sequence[Line]], *, title: str = "", compress: bool = True) -> bytes:
    objects: list[bytes] = []  # object n is objects[n - 1]

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in below
    pages_id = add(b"")
    font_regular = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    font_bold = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
    page_ids = []
    for lines in pages:
        stream = _page_stream(lines)
        if compress:
            stream = zlib.compress(stream)
            header = f"<< /Length {len(stream)} /Filter /FlateDecode >>".encode()
        else:
            header = f"<< /Length {len(stream)} >>".encode()
        content = add(header + b"\nstream\n" + stream + b"\nendstream")
        page_ids.append(
            add(
                (
                    f"<< /Type /Page /Parent {pages_id} 0 R /MediaBox [0 0 {PAGE_WIDTH} {PAGE_HEIGHT}] "
                    f"/Resources << /Font << /F1 {font_regular} 0 R /F2 {font_bold} 0 R >> >> "
                    f"/Contents {content} 0 R >>"
                ).encode()
            )
        )
    kids = " ".join(f"{page} 0 R" for page in page_ids)
    objects[pages_id - 1] = f"<< /Type /Pages /Kids [{kids}] /Count {len(page_ids)} >>".encode()
    objects[catalog - 1] = f"<< /Type /Catalog /Pages {pages_id} 0 R >>".encode()
    info = add(f"<< /Title ({_escape(title)}) /Producer (Hybrid AI portal) >>".encode()) if title else None

    output = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(output))
        output += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(output)
    output += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        output += f"{offset:010d} 00000 n \n".encode()
    trailer = f"<< /Size {len(objects) + 1} /Root {catalog} 0 R"
    if info:
        trailer += f" /Info {info} 0 R"
    output += f"trailer\n{trailer} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(output)


def pages_from_text(text: str) -> list[list[Line]]:
    """Pages separated by a line '---page---'; lines starting with '# ' are headings; blank lines split paragraphs."""
    pages = []
    for raw_page in text.split("\n---page---\n"):
        lines: list[Line] = []
        for paragraph in raw_page.strip().split("\n\n"):
            paragraph = paragraph.strip()
            if not paragraph:
                continue
            if paragraph.startswith("# "):
                lines.append(Line(paragraph[2:].strip(), heading=True))
            else:
                lines.append(Line(" ".join(paragraph.split())))
        pages.append(lines)
    return pages
