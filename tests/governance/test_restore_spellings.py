"""Restoration accepts every spelling a model gives a placeholder, however the stream is cut."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from governance import classes as dc
from governance.restore import PlaceholderRestorer, reidentify

ENTRIES = {
    "<PERSON_1>": "Amara Okafor",
    "<DATE_OF_BIRTH_2>": "1 May 1990",
    "<ACCOUNT_NUMBER_12>": "ACC-0048151623",
    "<POSTAL_ADDRESS_3>": "Dok Noord 12, 9000 Ghent",
}


@st.composite
def spellings(draw: Any, placeholder: str) -> tuple[str, str]:
    """One way a model may write `placeholder`: any case, `\\_` or `-` or ` ` for each underscore, inside
    angle brackets (plain, escaped or as entities), square or curly brackets, or bare."""
    words = placeholder[1:-1].split("_")
    body = words[0]
    for word in words[1:]:
        body += draw(st.sampled_from(["_", "\\_", "-", " "])) + word
    body = "".join(draw(st.sampled_from([ch.upper(), ch.lower()])) if ch.isalpha() else ch for ch in body)
    opened, closed = draw(
        st.sampled_from([("", ""), ("<", ">"), ("\\<", "\\>"), ("&lt;", "&gt;"), ("[", "]"), ("{", "}"), ("<", "")])
    )
    emphasis = draw(st.sampled_from(["", "**", "*", "`"]))
    return f"{emphasis}{opened}{body}{closed}{emphasis}", emphasis


@st.composite
def answers(draw: Any) -> tuple[str, str]:
    """An answer with placeholders in random spellings, and the answer the user must see."""
    written, expected = [], []
    for _ in range(draw(st.integers(1, 6))):
        prose = draw(st.sampled_from([" Dear ", " and ", ", born ", " at ", "; account ", " — ", "\n| ", " | "]))
        written.append(prose)
        expected.append(prose)
        if draw(st.booleans()):
            placeholder = draw(st.sampled_from(sorted(ENTRIES)))
            spelling, emphasis = draw(spellings(placeholder))
            written.append(spelling)
            expected.append(f"{emphasis}{ENTRIES[placeholder]}{emphasis}")
        else:  # a placeholder the vault does not hold stays exactly as written
            unknown = draw(spellings(draw(st.sampled_from(["<PERSON_9>", "<PHONE_1>", "<DATE_OF_BIRTH_20>"]))))[0]
            written.append(unknown)
            expected.append(unknown)
    written.append(".")
    expected.append(".")
    return "".join(written), "".join(expected)


@settings(max_examples=400, deadline=None)
@given(answer=answers(), cuts=st.lists(st.integers(0, 400), max_size=12))
def test_every_spelling_is_restored_whatever_the_chunks(answer: tuple[str, str], cuts: list[int]) -> None:
    written, expected = answer
    assert reidentify(written, ENTRIES) == expected
    points = sorted({cut % (len(written) + 1) for cut in cuts})
    pieces = [written[a:b] for a, b in zip([0, *points], [*points, len(written)], strict=True)]
    restorer = PlaceholderRestorer(ENTRIES)
    assert "".join(restorer.feed(piece) for piece in pieces) + restorer.finish() == expected
    restorer = PlaceholderRestorer(ENTRIES)  # one character at a time
    assert "".join(restorer.feed(ch) for ch in written) + restorer.finish() == expected


def test_the_spellings_seen_in_the_canary_run_are_restored() -> None:
    text = "PERSON\\_1, <PERSON\\_1>, \\<PERSON\\_1\\>, PERSON-1, PERSON 1, person_1, **<PERSON_1>**"
    assert reidentify(text, ENTRIES) == ", ".join(["Amara Okafor"] * 6) + ", **Amara Okafor**"


def test_lookalikes_are_left_alone() -> None:
    text = "PERSON_10, xPERSON_1, PERSON_1x, PERSONS_1, <PHONE_1>, PERSON_"
    assert reidentify(text, ENTRIES) == text


def test_a_placeholder_cut_at_every_point_of_the_stream_is_restored() -> None:
    written = "Hi \\<DATE\\_OF\\_BIRTH\\_2\\>!"
    for cut in range(len(written) + 1):
        restorer = PlaceholderRestorer(ENTRIES)
        shown = restorer.feed(written[:cut]) + restorer.feed(written[cut:]) + restorer.finish()
        assert shown == "Hi 1 May 1990!"


def test_every_class_name_can_be_restored() -> None:
    entries = {f"<{data_class}_1>": f"value of {data_class}" for data_class in dc.DATA_CLASSES}
    for data_class in dc.DATA_CLASSES:
        spaced = data_class.replace("_", " ").title() + " 1"
        assert reidentify(spaced, entries) == f"value of {data_class}"
