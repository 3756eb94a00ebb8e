from __future__ import annotations

from portal.routing.offline import NO_PASSAGES, OFFLINE_LABEL, extractive_answer, parse_messages

PASSAGES = [
    {"role": "system", "content": "Answer from the passages and cite them."},
    {"role": "user", "content": "[1] Source: Travel policy\nTrains are booked in second class. Taxis need approval."},
    {
        "role": "user",
        "content": "[2] Source: Expenses guide\nExpense claims are paid monthly. Receipts must be kept for ten years.",
    },
    {"role": "user", "content": "How long must receipts be kept?"},
]


def test_it_parses_passages_and_the_question():
    passages, question = parse_messages(PASSAGES)

    assert [(passage.number, passage.title) for passage in passages] == [(1, "Travel policy"), (2, "Expenses guide")]
    assert question == "How long must receipts be kept?"


def test_it_quotes_the_best_matching_sentence_with_its_citation():
    answer = extractive_answer(PASSAGES)

    assert answer.startswith(OFFLINE_LABEL)
    first_point = answer.splitlines()[2]
    assert first_point == "- Receipts must be kept for ten years. [2]"
    assert "[2] Expenses guide" in answer


def test_without_passages_it_says_there_is_nothing_to_quote():
    answer = extractive_answer([{"role": "user", "content": "What is the meaning of life?"}])
    assert answer == f"{OFFLINE_LABEL} {NO_PASSAGES}"
