"""Structure-aware chunking measured in the embedding model's tokens.

Blocks (paragraphs, list items, table rows, PDF lines) are packed into chunks that never cross a section
heading, nor a page boundary unless `across_pages`, up to `target_tokens`; a block longer than that is
cut at token boundaries. Each chunk after the first of a section starts with the last `overlap_tokens`
of the previous one, so a sentence split between chunks is still found whole in one of them. A chunk
records the first and last page its text comes from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from knowledge.extraction import Block

HEADING_SEPARATOR = " › "


@dataclass(frozen=True)
class ChunkDraft:
    text: str
    heading_path: str
    page_number: int | None
    token_count: int
    # Last page the chunk's text comes from (equal to page_number when the chunk sits on one page).
    page_end: int | None = None
    # For a chunk over several pages: (character offset in `text`, page) where each page's text begins.
    page_starts: tuple[tuple[int, int], ...] = ()


@dataclass
class _Piece:
    text: str
    tokens: int
    page: int | None = None
    is_tail: bool = False


def _token_spans(tokenizer: Any, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
    """Character spans of each text's tokens (fast tokenizers give offsets)."""
    if not texts:
        return []
    backend = _untruncated_backend(tokenizer)
    if backend is not None:
        # The Rust tokenizer directly: the transformers wrapper converts every field of every encoding
        # to Python lists, which took longer than the tokenizing itself.
        return [list(encoding.offsets) for encoding in backend.encode_batch(list(texts), add_special_tokens=False)]
    encoded = tokenizer(
        list(texts), add_special_tokens=False, truncation=False, return_offsets_mapping=True, verbose=False
    )
    return [[(int(start), int(end)) for start, end in offsets] for offsets in encoded["offset_mapping"]]


_backends: dict[int, Any] = {}


def _untruncated_backend(tokenizer: Any) -> Any:
    """A copy of a fast tokenizer's Rust tokenizer without truncation or padding (None if there is none).

    A copy, because the model's own tokenizer truncates to its input length, which must stay as it is.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    copy = _backends.get(id(backend))
    if copy is None:
        from tokenizers import Tokenizer

        copy = Tokenizer.from_str(backend.to_str())
        copy.no_truncation()
        copy.no_padding()
        _backends[id(backend)] = copy
    return copy


def _split_long(text: str, spans: list[tuple[int, int]], size: int, overlap: int) -> list[_Piece]:
    pieces = []
    start = 0
    step = max(1, size - overlap)
    while start < len(spans):
        window = spans[start : start + size]
        pieces.append(_Piece(text[window[0][0] : window[-1][1]].strip(), len(window)))
        if start + size >= len(spans):
            break
        start += step
    return pieces


def _tail(text: str, spans: list[tuple[int, int]], tokens: int) -> _Piece | None:
    if tokens <= 0 or not spans:
        return None
    kept = spans[-tokens:]
    return _Piece(text[kept[0][0] :].strip(), len(kept), is_tail=True)


def chunk_blocks(
    blocks: Sequence[Block],
    *,
    tokenizer: Any,
    target_tokens: int = 200,
    overlap_tokens: int = 32,
    across_pages: bool = False,
) -> list[ChunkDraft]:
    """`across_pages`: let a chunk run on over a page break; it is cited by the page it starts on and
    records the last page it covers in `page_end`."""
    spans = _token_spans(tokenizer, [block.text for block in blocks])
    drafts: list[ChunkDraft] = []
    current: list[_Piece] = []
    current_key: tuple[tuple[str, ...], int | None] | None = None
    pending_heading: list[_Piece] = []

    def emit() -> None:
        nonlocal current
        if current:
            paged = any(piece.page is not None for piece in current)
            text = ("\n" if paged else "\n\n").join(piece.text for piece in current)
            assert current_key is not None
            headings = current_key[0]
            page = next((piece.page for piece in current if not piece.is_tail), current[0].page)
            page_end = max((piece.page for piece in current if piece.page is not None), default=None)
            starts: list[tuple[int, int]] = []
            offset = 0
            for piece in current:
                if piece.page is not None and (not starts or starts[-1][1] != piece.page):
                    starts.append((offset, piece.page))
                offset += len(piece.text) + 1  # the "\n" between pieces
            drafts.append(
                ChunkDraft(
                    text=text,
                    heading_path=HEADING_SEPARATOR.join(headings),
                    page_number=page,
                    token_count=sum(piece.tokens for piece in current),
                    page_end=page_end,
                    page_starts=tuple(starts) if len(starts) > 1 else (),
                )
            )
        current = []

    for block, block_spans in zip(blocks, spans, strict=True):
        key = (block.heading_path, None if across_pages else block.page_number)
        if block.is_heading:
            # A heading opens a new section; it is kept as the first line of the section's first chunk.
            emit()
            current_key = key
            pending_heading = [_Piece(block.text, len(block_spans), block.page_number)]
            continue
        if key != current_key:
            emit()
            current_key = key
        pieces = (
            _split_long(block.text, block_spans, target_tokens, overlap_tokens)
            if len(block_spans) > target_tokens
            else [_Piece(block.text, len(block_spans))]
        )
        for piece in pieces:
            piece.page = block.page_number
        for index, piece in enumerate(pieces):
            used = sum(p.tokens for p in current) + sum(p.tokens for p in pending_heading)
            if current and used + piece.tokens > target_tokens:
                previous = current[-1]
                emit()
                if index == 0 and overlap_tokens:
                    # Overlap with the previous chunk of the same section.
                    prev_spans = _token_spans(tokenizer, [previous.text])[0]
                    tail = _tail(previous.text, prev_spans, min(overlap_tokens, len(prev_spans)))
                    if tail is not None and tail.tokens < previous.tokens:
                        tail.page = previous.page
                        current.append(tail)
            if pending_heading:
                current.extend(pending_heading)
                pending_heading = []
            current.append(piece)
    emit()
    return drafts
