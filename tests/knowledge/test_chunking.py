from __future__ import annotations

import re
from typing import Any

from knowledge.chunking import chunk_blocks
from knowledge.extraction import Block


def _words_tokenizer(texts: list[str], **_: Any) -> dict[str, list[list[tuple[int, int]]]]:
    """One token per word, with character offsets like a fast tokenizer."""
    return {"offset_mapping": [[match.span() for match in re.finditer(r"\S+", text)] for text in texts]}


def test_a_chunk_that_runs_over_a_page_break_records_the_pages_it_covers() -> None:
    blocks = [Block("end of the first page", page_number=1), Block("start of the second page", page_number=2)]
    [draft] = chunk_blocks(blocks, tokenizer=_words_tokenizer, target_tokens=50, across_pages=True)
    assert (draft.page_number, draft.page_end) == (1, 2)


def test_chunks_kept_within_pages_end_on_the_page_they_start() -> None:
    blocks = [Block("end of the first page", page_number=1), Block("start of the second page", page_number=2)]
    drafts = chunk_blocks(blocks, tokenizer=_words_tokenizer, target_tokens=50)
    assert [(draft.page_number, draft.page_end) for draft in drafts] == [(1, 1), (2, 2)]


def test_chunks_without_pages_have_no_page_range() -> None:
    [draft] = chunk_blocks([Block("a paragraph of text")], tokenizer=_words_tokenizer, target_tokens=50)
    assert (draft.page_number, draft.page_end) == (None, None)


def test_a_chunk_over_pages_knows_where_each_page_begins_in_its_text() -> None:
    blocks = [
        Block("end of the first page", page_number=1),
        Block("more of the first page", page_number=1),
        Block("start of the second page", page_number=2),
        Block("the third page", page_number=3),
    ]
    [draft] = chunk_blocks(blocks, tokenizer=_words_tokenizer, target_tokens=50, across_pages=True)
    assert draft.page_starts == ((0, 1), (45, 2), (70, 3))
    assert [draft.text[offset:].split("\n")[0] for offset, _ in draft.page_starts] == [
        "end of the first page",
        "start of the second page",
        "the third page",
    ]
    [one_page] = chunk_blocks(blocks[:2], tokenizer=_words_tokenizer, target_tokens=50, across_pages=True)
    assert one_page.page_starts == ()
