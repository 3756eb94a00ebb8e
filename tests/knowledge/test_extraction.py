from __future__ import annotations

import re

import pytest

from knowledge import extraction
from knowledge.extraction import ExtractionError, extract
from tests.knowledge.factories import (
    docx_bytes,
    encrypted_pdf_bytes,
    pdf_bomb_bytes,
    pdf_bytes,
    zip_bomb_docx_bytes,
)

LIMITS = {"max_bytes": 1_000_000, "max_expanded_bytes": 5_000_000}


def test_pdf_text_keeps_page_numbers() -> None:
    result = extract(pdf_bytes([["Alpha page text"], ["Beta page text"]], title="Two pages"), "two.pdf", **LIMITS)
    assert result.page_count == 2
    assert [(block.page_number, block.text) for block in result.blocks] == [
        (1, "Alpha page text"),
        (2, "Beta page text"),
    ]
    assert result.title == "Two pages"


def test_docx_headings_become_the_heading_path() -> None:
    result = extract(docx_bytes("Leave", ["Annual leave is 24 days."]), "leave.docx", **LIMITS)
    body = [block for block in result.blocks if not block.is_heading]
    assert body[0].text == "Annual leave is 24 days."
    assert body[0].heading_path == ("Leave",)


def test_html_drops_scripts_and_keeps_sections() -> None:
    html = (
        b"<html><head><title>T</title><script>alert(1)</script></head>"
        b"<body><h1>Top</h1><h2>Sub</h2><p>Body text</p></body></html>"
    )
    result = extract(html, "page.html", **LIMITS)
    assert result.title == "T"
    assert all("alert" not in block.text for block in result.blocks)
    assert [b for b in result.blocks if b.text == "Body text"][0].heading_path == ("Top", "Sub")


def test_markdown_sections_nest() -> None:
    text = b"# Handbook\n\nIntro.\n\n## Leave\n\nTwenty-four days.\n\n# Other\n\nMore."
    result = extract(text, "h.md", **LIMITS)
    paths = {block.text: block.heading_path for block in result.blocks if not block.is_heading}
    assert paths == {"Intro.": ("Handbook",), "Twenty-four days.": ("Handbook", "Leave"), "More.": ("Other",)}


def test_plain_text_splits_paragraphs() -> None:
    result = extract("First paragraph.\n\nSecond – café.".encode(), "notes.txt", **LIMITS)
    assert [block.text for block in result.blocks] == ["First paragraph.", "Second – café."]


def test_csv_rows_carry_their_column_names() -> None:
    result = extract(b"city,manager\nGhent,Els\nAntwerp,Nora\n", "shops.csv", **LIMITS)
    assert [block.text for block in result.blocks] == ["city: Ghent; manager: Els", "city: Antwerp; manager: Nora"]


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (b"%PDF-1.4 this is not really a pdf", "broken.pdf", "looks damaged"),
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00binary", "program.exe", "Unsupported file type"),
        (b"", "empty.txt", extraction.ERROR_EMPTY),
        (b"\x00\x01\x02\x03binary\x00\xff" * 50, "fake.txt", extraction.ERROR_BINARY),
        (b"PK\x03\x04 not a zip at all", "broken.docx", "could not be read"),
        (b"   \n\n  ", "blank.md", extraction.ERROR_NO_TEXT),
    ],
)
def test_bad_input_raises_a_message_for_the_uploader(data: bytes, filename: str, message: str) -> None:
    with pytest.raises(ExtractionError, match=re.escape(message)):
        extract(data, filename, **LIMITS)


def test_encrypted_pdf_is_refused() -> None:
    with pytest.raises(ExtractionError) as error:
        extract(encrypted_pdf_bytes(), "locked.pdf", **LIMITS)
    assert str(error.value) == extraction.ERROR_PDF_ENCRYPTED


def test_file_over_the_size_limit_is_refused() -> None:
    with pytest.raises(ExtractionError, match="over the limit"):
        extract(b"x" * 2000, "big.txt", max_bytes=1000, max_expanded_bytes=10_000)


def test_zip_bomb_docx_is_refused_before_expanding() -> None:
    with pytest.raises(ExtractionError, match="decompression bomb"):
        extract(zip_bomb_docx_bytes(6_000_000), "bomb.docx", **LIMITS)


def test_pdf_bomb_is_refused() -> None:
    with pytest.raises(ExtractionError) as error:
        extract(pdf_bomb_bytes(), "bomb.pdf", max_bytes=10_000_000, max_expanded_bytes=10_000_000)
    assert str(error.value) == extraction.ERROR_PDF_BOMB


def _with_stream(pdf: bytes, dictionary: bytes, payload: bytes) -> bytes:
    """The PDF with its first content stream replaced by `payload` under `dictionary`."""
    start = pdf.index(b"<< /Length")
    end = pdf.index(b"endstream", start) + len(b"endstream")
    return pdf[:start] + dictionary + b"\nstream\n" + payload + b"\nendstream" + pdf[end:]


def test_a_pdf_stream_compressed_twice_over_is_measured_layer_by_layer() -> None:
    import zlib

    inner = zlib.compress(b"BT /F1 11 Tf (x) Tj ET\n" + b" " * 20_000_000, 9)
    payload = zlib.compress(inner, 9)  # small in the file, 20 MB after the second inflate
    assert len(payload) < 100_000
    bomb = _with_stream(
        pdf_bytes([["hello"]]),
        f"<< /Length {len(payload)} /Filter [/FlateDecode /FlateDecode] >>".encode(),
        payload,
    )
    with pytest.raises(ExtractionError) as error:
        extract(bomb, "layers.pdf", max_bytes=10_000_000, max_expanded_bytes=10_000_000)
    assert str(error.value) == extraction.ERROR_PDF_BOMB


def test_large_images_do_not_count_towards_the_inflate_limit() -> None:
    import zlib

    pixels = zlib.compress(b"\xff" * 12_000_000, 9)
    image = (
        f"1 0 obj << /Type /XObject /Subtype /Image /Width 2000 /Height 2000 /ColorSpace /DeviceRGB "
        f"/BitsPerComponent 8 /Length {len(pixels)} /Filter /FlateDecode >>"
    ).encode()
    pdf = pdf_bytes([["Text beside a picture"]])
    # an unreferenced image object ahead of the others: text extraction never inflates it
    with_image = pdf.replace(
        b"%PDF-1.4\n", b"%PDF-1.4\n" + image + b"\nstream\n" + pixels + b"\nendstream\nendobj\n", 1
    )
    result = extract(with_image, "picture.pdf", max_bytes=10_000_000, max_expanded_bytes=10_000_000)
    assert [block.text for block in result.blocks] == ["Text beside a picture"]


def test_pdf_headings_are_told_apart_by_their_font() -> None:
    from knowledge.pdf import Line, write_text_pdf

    data = write_text_pdf(
        [
            [Line("Leave", heading=True), Line("Employees have 26 days of annual leave.")],
            [Line("Carrying over unused days is allowed up to five days.")],
        ]
    )
    result = extract(data, "handbook.pdf", **LIMITS)
    assert [(block.page_number, block.is_heading, block.heading_path) for block in result.blocks] == [
        (1, True, ("Leave",)),
        (1, False, ("Leave",)),
        (2, False, ("Leave",)),
    ]


def test_a_pdf_cover_page_is_not_a_section_of_every_page() -> None:
    from knowledge.pdf import Line, write_text_pdf

    data = write_text_pdf(
        [
            [Line("Staff Handbook", heading=True)],
            [Line("Leave", heading=True), Line("Employees have 26 days of annual leave.")],
        ]
    )
    blocks = extract(data, "handbook.pdf", **LIMITS).blocks
    assert (blocks[0].text, blocks[0].is_heading, blocks[0].heading_path) == ("Staff Handbook", False, ())
    assert blocks[-1].heading_path == ("Leave",)


def test_a_large_but_legitimate_content_stream_is_read() -> None:
    """A content stream that inflates to several megabytes (under the limit) is measured and read."""
    import zlib

    content = b"BT /F1 11 Tf 56 700 Td (A long page) Tj ET\n" + b"% padding\n" * 400_000
    payload = zlib.compress(content, 9)
    pdf = _with_stream(pdf_bytes([["x"]]), f"<< /Length {len(payload)} /Filter /FlateDecode >>".encode(), payload)
    result = extract(pdf, "long.pdf", max_bytes=10_000_000, max_expanded_bytes=10_000_000)
    assert [block.text for block in result.blocks] == ["A long page"]
