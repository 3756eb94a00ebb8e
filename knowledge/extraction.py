"""Text out of uploaded files, keeping the structure chunking needs (pages, headings, paragraphs).

Every failure a user can cause raises ExtractionError with a message meant for the uploader.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

ERROR_UNSUPPORTED = "Unsupported file type {extension!r}. Upload PDF, DOCX, HTML, Markdown, text or CSV."
ERROR_EMPTY = "The file is empty."
ERROR_NO_TEXT = "No text could be found in the file (a scanned PDF needs OCR first)."
ERROR_TOO_LARGE = "The file is {size} bytes, over the limit of {limit} bytes."
ERROR_PDF_CORRUPT = "The PDF could not be read; it looks damaged ({detail})."
ERROR_PDF_ENCRYPTED = "The PDF is encrypted with a password; upload an unprotected copy."
ERROR_PDF_TOO_MANY_PAGES = "The PDF has {pages} pages, over the limit of {limit}; split it into smaller files."
ERROR_DOCX_CORRUPT = "The DOCX file could not be read; it looks damaged ({detail})."
ERROR_BOMB = "The file expands to more than {limit} bytes; refused as a possible decompression bomb."
ERROR_PDF_BOMB = (
    "The PDF holds a compressed stream that expands beyond the safety limit; refused as a possible decompression bomb."
)
ERROR_BINARY = "The file has a text extension but binary content; it is not a text file."
ERROR_ENCODING = "The text is not valid UTF-8, UTF-16 or Latin-1."

TEXT_EXTENSIONS = {".txt", ".text", ".md", ".markdown", ".csv", ".html", ".htm"}
SUPPORTED_EXTENSIONS = {".pdf", ".docx", *TEXT_EXTENSIONS}


ERROR_NOT_PDF = "The file is named .pdf but is not a PDF (it does not start with the PDF signature)."
ERROR_NOT_DOCX = "The file is named .docx but is not a Word document (a .docx is a zip archive)."
PDF_SIGNATURE_WINDOW = 1024  # readers accept the %PDF- header anywhere in the first kilobyte


class ExtractionError(Exception):
    pass


def upload_problem(data: bytes, filename: str, *, max_bytes: int) -> str | None:
    """Why a file is refused at upload, before it becomes a document: cheap checks only, the rest at ingestion."""
    extension = extension_of(filename)
    if extension not in SUPPORTED_EXTENSIONS:
        return ERROR_UNSUPPORTED.format(extension=extension or filename)
    if not data:
        return ERROR_EMPTY
    if len(data) > max_bytes:
        return ERROR_TOO_LARGE.format(size=len(data), limit=max_bytes)
    if extension == ".pdf" and b"%PDF-" not in data[:PDF_SIGNATURE_WINDOW]:
        return ERROR_NOT_PDF
    if extension == ".docx" and not data.startswith(b"PK\x03\x04"):
        return ERROR_NOT_DOCX
    return None


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


def extract(
    data: bytes, filename: str, *, max_bytes: int, max_expanded_bytes: int, max_pdf_pages: int | None = None
) -> Extracted:
    extension = extension_of(filename)
    if extension not in SUPPORTED_EXTENSIONS:
        raise ExtractionError(ERROR_UNSUPPORTED.format(extension=extension or filename))
    if not data:
        raise ExtractionError(ERROR_EMPTY)
    if len(data) > max_bytes:
        raise ExtractionError(ERROR_TOO_LARGE.format(size=len(data), limit=max_bytes))
    if extension == ".pdf":
        result = _extract_pdf(data, max_expanded_bytes=max_expanded_bytes, max_pages=max_pdf_pages)
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


def _extract_pdf(data: bytes, *, max_expanded_bytes: int, max_pages: int | None = None) -> Extracted:
    """Text lines of each page with their font style, read by PDFium (pypdfium2).

    PDFium is the PDF engine of Chromium: fast (about ten times pypdf on the Contoso PDFs, with the
    same text) and hardened against malformed files. It inflates streams itself without a limit, so
    the compressed streams are measured first (_check_pdf_streams).
    """
    import pypdfium2 as pdfium

    _check_pdf_streams(data, max_expanded_bytes)
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as error:
        if getattr(error, "err_code", None) == pdfium.raw.FPDF_ERR_PASSWORD:
            # Owner-password-only PDFs open without a password; this one needs the user password.
            raise ExtractionError(ERROR_PDF_ENCRYPTED) from error
        raise ExtractionError(ERROR_PDF_CORRUPT.format(detail=_pdfium_reason(error))) from error
    try:
        if max_pages is not None and len(document) > max_pages:
            # checked before any page is read: one huge file must not keep a worker busy for minutes
            raise ExtractionError(ERROR_PDF_TOO_MANY_PAGES.format(pages=len(document), limit=max_pages))
        pages = []
        for index in range(len(document)):
            page = document[index]
            try:
                pages.append(_pdf_page_lines(page))
            finally:
                page.close()
        result = Extracted(page_count=len(pages))
        # Lines, not pages, are the units: chunks are then packed to size within (or across) pages.
        result.blocks = _pdf_blocks(pages)
        result.title = (document.get_metadata_value("Title") or "").strip()
    except pdfium.PdfiumError as error:
        raise ExtractionError(ERROR_PDF_CORRUPT.format(detail=_pdfium_reason(error))) from error
    finally:
        document.close()
    return result


def _pdfium_reason(error: Exception) -> str:
    text = str(error)
    reason = text[text.find("PDFium: ") + 8 :].rstrip(").") if "PDFium: " in text else text
    return reason[:200] or type(error).__name__


_STREAM_START = re.compile(rb"stream\r?\n")
_IMAGE_SUBTYPE = re.compile(rb"/Subtype\s*/Image\b")
_INFLATE_PIECE = 1 << 20


def _check_pdf_streams(data: bytes, max_expanded_bytes: int) -> None:
    """Refuse a PDF whose compressed streams inflate to more than the limit in total.

    Every stream is tried with zlib (what the dictionary claims is not trusted), one piece at a time so
    nothing large is kept; a stream compressed several times over is followed layer by layer. Images
    (by their dictionary) have a budget of their own, four times the limit: text extraction does not
    inflate them, and a stream that only claims to be an image still gets a bounded allowance.
    """
    budgets = {"text": max_expanded_bytes, "image": 4 * max_expanded_bytes}
    position = 0
    while (match := _STREAM_START.search(data, position)) is not None:
        end = data.find(b"endstream", match.end())
        if end < 0:
            break
        position = end + len(b"endstream")
        window = data[max(0, match.start() - 4096) : match.start()]
        # the stream's dictionary: what follows the last "obj" keyword before it
        dictionary = window[window.rfind(b"obj") + 3 :] if b"obj" in window else window
        kind = "image" if _IMAGE_SUBTYPE.search(dictionary) else "text"
        payload = data[match.end() : end]
        for _layer in range(MAX_FLATE_LAYERS):
            size, head = _inflated_size(payload, budgets[kind])
            if size < 0:
                raise ExtractionError(ERROR_PDF_BOMB)
            if size and _looks_like_zlib(head):
                payload = zlib.decompressobj().decompress(payload)  # within the budget: measured above
                continue
            budgets[kind] -= size
            break
        else:
            raise ExtractionError(ERROR_PDF_BOMB)


MAX_FLATE_LAYERS = 4


def _looks_like_zlib(head: bytes) -> bool:
    return len(head) == 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0


def _inflated_size(payload: bytes, limit: int) -> tuple[int, bytes]:
    """(size of the inflated payload, its first two bytes); size -1 past `limit`, 0 if it is not zlib data."""
    inflater = zlib.decompressobj()
    size = 0
    head = b""
    tail = payload
    try:
        while tail:
            piece = inflater.decompress(tail, _INFLATE_PIECE)
            tail = inflater.unconsumed_tail
            if len(head) < 2:
                head = (head + piece)[:2]
            size += len(piece)
            if size > limit:
                return -1, head
            if inflater.eof or not piece:
                break  # bytes after the end of the zlib data (the line end before "endstream") stay unread
    except zlib.error:
        return 0, b""  # PDFium will judge the stream itself
    return size, head


_BOLD_FONT = re.compile(r"bold|black|heavy|semibold|demi", re.IGNORECASE)
HEADING_MAX_CHARACTERS = 120
# characters of a line whose font is looked up: enough for a majority, few calls into PDFium
STYLE_SAMPLES = 5


@dataclass(frozen=True)
class _PdfLine:
    text: str
    # (bold, size in points) of most of the line's characters; None when the PDF gives no font.
    style: tuple[bool, float] | None
    characters: int


def _sample_positions(line: str, samples: int) -> list[int]:
    """Up to `samples` positions of non-space characters, spread evenly over the line."""
    positions: list[int] = []
    for step in range(samples):
        position = step * len(line) // samples
        while position < len(line) and line[position].isspace():
            position += 1
        if position < len(line) and (not positions or positions[-1] != position):
            positions.append(position)
    return positions


def _pdf_page_lines(page: Any) -> list[_PdfLine]:
    """The page's text lines (as PDFium lays them out) with the font style of each line.

    PDFium's text is indexed by character, so a few characters spread over a line tell the line's
    font size and weight.
    """
    import ctypes

    import pypdfium2.raw as pdfium_c

    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        text = textpage.get_text_range(0, count) if count > 0 else ""
        name_buffer = ctypes.create_string_buffer(256)
        flags = ctypes.c_int()

        def style_at(index: int) -> tuple[bool, float] | None:
            size = pdfium_c.FPDFText_GetFontSize(textpage.raw, index)
            if size <= 0:
                return None
            length = pdfium_c.FPDFText_GetFontInfo(textpage.raw, index, name_buffer, 256, ctypes.byref(flags))
            name = name_buffer.value.decode("latin-1") if length else ""
            weight = pdfium_c.FPDFText_GetFontWeight(textpage.raw, index)
            return (bool(_BOLD_FONT.search(name)) or weight >= 600, round(float(size) * 2) / 2)

        lines: list[_PdfLine] = []
        offset = 0
        # PDFium ends lines with \r\n; its character indexes count those too.
        for raw_line in text.split("\n"):
            start, offset = offset, offset + len(raw_line) + 1
            cleaned = _clean(raw_line)
            if not cleaned:
                continue
            counts: dict[tuple[bool, float] | None, int] = {}
            for index in _sample_positions(raw_line, STYLE_SAMPLES):
                style = style_at(start + index)
                counts[style] = counts.get(style, 0) + 1
            style = max(counts, key=lambda key: counts[key]) if counts else None
            lines.append(_PdfLine(cleaned, style, len("".join(raw_line.split()))))
        return lines
    finally:
        textpage.close()


def _pdf_blocks(pages: list[list[_PdfLine]]) -> list[Block]:
    """Blocks of a PDF, with headings told apart by their font: bigger than the body text, or bold when it is not.

    Heading levels follow the heading styles from the biggest down, so the heading path nests the way
    the document's typography does; consecutive lines in one heading style are one (wrapped) heading.
    """
    totals: dict[tuple[bool, float], int] = {}
    for lines in pages:
        for line in lines:
            if line.style is not None:
                totals[line.style] = totals.get(line.style, 0) + line.characters
    body = max(totals, key=lambda key: totals[key]) if totals else None

    def is_heading_style(style: tuple[bool, float] | None) -> bool:
        if body is None or style is None or style == body:
            return False
        bold, size = style
        return size > body[1] + 0.5 or (bold and not body[0] and size >= body[1] - 0.5)

    def is_heading(line: _PdfLine) -> bool:
        return (
            is_heading_style(line.style)
            and len(line.text) <= HEADING_MAX_CHARACTERS
            and any(character.isalpha() for character in line.text)
        )

    heading_styles = sorted(
        {line.style for lines in pages for line in lines if line.style is not None and is_heading(line)},
        key=lambda style: (-style[1], not style[0]),
    )
    level_of = {style: level for level, style in enumerate(heading_styles, start=1)}
    blocks: list[Block] = []
    headings: list[str] = []
    levels: list[int] = []
    for number, lines in enumerate(pages, start=1):
        if number == 1 and len(pages) > 1 and lines and all(is_heading(line) for line in lines):
            # A cover page: its big lines are the document's title, not a section every page belongs to.
            blocks.append(Block(" ".join(line.text for line in lines), page_number=number))
            continue
        previous: _PdfLine | None = None
        for line in lines:
            if is_heading(line) and line.style is not None:
                level = level_of[line.style]
                if previous is not None and previous.style == line.style and blocks and blocks[-1].is_heading:
                    # The heading wraps onto this line.
                    headings[-1] = f"{headings[-1]} {line.text}"
                    blocks[-1] = Block(headings[-1], tuple(headings), number, is_heading=True)
                else:
                    kept = [index for index, kept_level in enumerate(levels) if kept_level < level]
                    headings = [headings[index] for index in kept] + [line.text]
                    levels = [levels[index] for index in kept] + [level]
                    blocks.append(Block(line.text, tuple(headings), number, is_heading=True))
            else:
                blocks.append(Block(line.text, tuple(headings), number))
            previous = line
    return blocks


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
