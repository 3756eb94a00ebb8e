"""Text out of uploaded files, keeping the structure chunking needs (pages, headings, paragraphs).

Every failure a user can cause raises ExtractionError with a message meant for the uploader.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePath

ERROR_UNSUPPORTED = "Unsupported file type {extension!r}. Upload PDF, DOCX, HTML, Markdown, text or CSV."
ERROR_EMPTY = "The file is empty."
ERROR_NO_TEXT = "No text could be found in the file (a scanned PDF needs OCR first)."
ERROR_TOO_LARGE = "The file is {size} bytes, over the limit of {limit} bytes."
ERROR_PDF_CORRUPT = "The PDF could not be read; it looks damaged ({detail})."
ERROR_PDF_ENCRYPTED = "The PDF is encrypted with a password; upload an unprotected copy."
ERROR_DOCX_CORRUPT = "The DOCX file could not be read; it looks damaged ({detail})."
ERROR_BOMB = "The file expands to more than {limit} bytes; refused as a possible decompression bomb."
ERROR_PDF_BOMB = (
    "The PDF holds a compressed stream that expands beyond the safety limit; refused as a possible decompression bomb."
)
ERROR_BINARY = "The file has a text extension but binary content; it is not a text file."
ERROR_ENCODING = "The text is not valid UTF-8, UTF-16 or Latin-1."

TEXT_EXTENSIONS = {".txt", ".text", ".md", ".markdown", ".csv", ".html", ".htm"}
SUPPORTED_EXTENSIONS = {".pdf", ".docx", *TEXT_EXTENSIONS}


class ExtractionError(Exception):
    pass


@dataclass
class Block:
    """A paragraph-like piece of text with where it sits in the document."""

    text: str
    heading_path: tuple[str, ...] = ()
    page_number: int | None = None
    is_heading: bool = False


@dataclass
class Extracted:
    blocks: list[Block] = field(default_factory=list)
    page_count: int | None = None
    title: str = ""


def extension_of(filename: str) -> str:
    return PurePath(filename).suffix.lower()


def content_type_for(filename: str) -> str:
    return {
        ".pdf": "application/pdf",
        ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ".html": "text/html",
        ".htm": "text/html",
        ".md": "text/markdown",
        ".markdown": "text/markdown",
        ".csv": "text/csv",
        ".txt": "text/plain",
        ".text": "text/plain",
    }.get(extension_of(filename), "application/octet-stream")


def extract(data: bytes, filename: str, *, max_bytes: int, max_expanded_bytes: int) -> Extracted:
    extension = extension_of(filename)
    if extension not in SUPPORTED_EXTENSIONS:
        raise ExtractionError(ERROR_UNSUPPORTED.format(extension=extension or filename))
    if not data:
        raise ExtractionError(ERROR_EMPTY)
    if len(data) > max_bytes:
        raise ExtractionError(ERROR_TOO_LARGE.format(size=len(data), limit=max_bytes))
    if extension == ".pdf":
        result = _extract_pdf(data)
    elif extension == ".docx":
        result = _extract_docx(data, max_expanded_bytes=max_expanded_bytes)
    else:
        text = decode_text(data)
        if extension in {".html", ".htm"}:
            result = _extract_html(text)
        elif extension in {".md", ".markdown"}:
            result = _extract_markdown(text)
        elif extension == ".csv":
            result = _extract_csv(text)
        else:
            result = _extract_plain(text)
    result.blocks = [block for block in result.blocks if block.text.strip()]
    if not result.blocks:
        raise ExtractionError(ERROR_NO_TEXT)
    return result


def decode_text(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as error:
            raise ExtractionError(ERROR_ENCODING) from error
    sample = data[:65536]
    # NUL bytes and a high share of control characters do not occur in text files.
    controls = sum(1 for byte in sample if byte < 32 and byte not in (9, 10, 12, 13))
    if b"\x00" in sample or controls > len(sample) * 0.05:
        raise ExtractionError(ERROR_BINARY)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def _clean(text: str) -> str:
    text = _CONTROL_CHARACTERS.sub("", text)
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _paragraphs(text: str) -> list[str]:
    return [_clean(part) for part in re.split(r"\n\s*\n", text) if part.strip()]


def _extract_pdf(data: bytes) -> Extracted:
    import pypdf
    from pypdf.errors import LimitReachedError, PdfReadError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            # Owner-password-only PDFs open with an empty user password; anything else is locked.
            try:
                if not reader.decrypt(""):
                    raise ExtractionError(ERROR_PDF_ENCRYPTED)
            except ExtractionError:
                raise
            except Exception as error:
                raise ExtractionError(ERROR_PDF_ENCRYPTED) from error
        result = Extracted(page_count=len(reader.pages))
        for number, page in enumerate(reader.pages, start=1):
            text = page.extract_text() or ""
            # Lines, not pages, are the units: chunks are then packed to size within (or across) pages.
            for line in _clean(text).splitlines():
                if line.strip():
                    result.blocks.append(Block(line.strip(), page_number=number))
        metadata = reader.metadata
        if metadata is not None and metadata.title:
            result.title = str(metadata.title).strip()
    except ExtractionError:
        raise
    except LimitReachedError as error:
        raise ExtractionError(ERROR_PDF_BOMB) from error
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as error:
        raise ExtractionError(ERROR_PDF_CORRUPT.format(detail=str(error)[:200] or type(error).__name__)) from error
    except Exception as error:  # pypdf raises assorted errors on malformed input
        raise ExtractionError(ERROR_PDF_CORRUPT.format(detail=type(error).__name__)) from error
    return result


def _check_zip(data: bytes, *, max_expanded_bytes: int) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as error:
        raise ExtractionError(ERROR_DOCX_CORRUPT.format(detail="not a zip archive")) from error
    if expanded > max_expanded_bytes:
        raise ExtractionError(ERROR_BOMB.format(limit=max_expanded_bytes))


def _extract_docx(data: bytes, *, max_expanded_bytes: int) -> Extracted:
    _check_zip(data, max_expanded_bytes=max_expanded_bytes)
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as error:
        raise ExtractionError(ERROR_DOCX_CORRUPT.format(detail=type(error).__name__)) from error
    result = Extracted()
    headings: list[str] = []
    for paragraph in document.paragraphs:
        text = _clean(paragraph.text)
        if not text:
            continue
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        level = _heading_level(style)
        if level:
            headings = [*headings[: level - 1], text]
            result.blocks.append(Block(text, tuple(headings), is_heading=True))
            if level == 1 and not result.title:
                result.title = text
        else:
            result.blocks.append(Block(text, tuple(headings)))
    for table in document.tables:
        for row in table.rows:
            cells = [_clean(cell.text) for cell in row.cells]
            if any(cells):
                result.blocks.append(Block(" | ".join(cells), tuple(headings)))
    if document.core_properties.title:
        result.title = document.core_properties.title
    return result


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    match = re.match(r"Heading (\d)", style)
    return int(match.group(1)) if match else 0


def _extract_html(text: str) -> Extracted:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "nav", "footer"]):
        tag.decompose()
    result = Extracted()
    if soup.title and soup.title.string:
        result.title = soup.title.string.strip()
    headings: list[str] = []
    body = soup.body or soup
    for element in body.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "td", "blockquote"]):
        if element.find_parent(["p", "li", "td", "pre", "blockquote"]) is not None:
            continue  # text already taken with its container
        content = _clean(element.get_text(" "))
        if not content:
            continue
        if element.name and element.name[0] == "h" and element.name[1:].isdigit():
            level = int(element.name[1:])
            headings = [*headings[: level - 1], content]
            result.blocks.append(Block(content, tuple(headings), is_heading=True))
        else:
            result.blocks.append(Block(content, tuple(headings)))
    if not result.blocks:
        result.blocks = [Block(paragraph) for paragraph in _paragraphs(body.get_text("\n"))]
    return result


def _extract_markdown(text: str) -> Extracted:
    result = Extracted()
    headings: list[str] = []
    buffer: list[str] = []
    in_code = False

    def flush() -> None:
        if buffer:
            result.blocks.append(Block(_clean("\n".join(buffer)), tuple(headings)))
            buffer.clear()

    for line in text.splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
            buffer.append(line)
            continue
        match = None if in_code else re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if match:
            flush()
            level = len(match.group(1))
            heading = match.group(2).strip()
            headings = [*headings[: level - 1], heading]
            result.blocks.append(Block(heading, tuple(headings), is_heading=True))
            if level == 1 and not result.title:
                result.title = heading
        elif not line.strip() and not in_code:
            flush()
        else:
            buffer.append(line)
    flush()
    return result


def _extract_csv(text: str) -> Extracted:
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(io.StringIO(text), dialect))
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    result = Extracted()
    if not rows:
        return result
    header = [cell.strip() for cell in rows[0]]
    for row in rows[1:] or rows:
        pairs = [f"{name}: {value.strip()}" for name, value in zip(header, row, strict=False) if value.strip()]
        result.blocks.append(Block("; ".join(pairs) if rows[1:] else ", ".join(row)))
    return result


def _extract_plain(text: str) -> Extracted:
    return Extracted(blocks=[Block(paragraph) for paragraph in _paragraphs(text)])
