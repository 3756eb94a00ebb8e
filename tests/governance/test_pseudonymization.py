"""Properties of pseudonymization and re-identification (hypothesis)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governance import known_entities
from governance.gate import PromptPart, egress_gate
from governance.restore import PlaceholderRestorer, reidentify
from governance.vault import Vault
from tests.governance.conftest import CLOUD

pytestmark = pytest.mark.django_db

# Names made of letters with accents, so case- and accent-folding are exercised too.
name_part = st.text(alphabet="abcdefghijklmnopqrstuvwxyzéèöüåñç", min_size=3, max_size=8).map(str.capitalize)
person = st.tuples(name_part, name_part).map(" ".join)
filler = st.text(alphabet="abcdefghij klmnop.,;:!?()-\n", max_size=30).map(lambda text: f" {text} ")
emails = st.from_regex(r"[a-z]{2,8}\.[a-z]{2,8}@[a-z]{3,8}\.(org|com|net)", fullmatch=True)
PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def texts_with_values(draw: Any) -> tuple[str, list[str]]:
    people = draw(st.lists(person, min_size=1, max_size=3, unique_by=str.casefold))
    pieces = []
    values = list(people)
    for _ in range(draw(st.integers(1, 5))):
        pieces.append(draw(filler))
        if draw(st.booleans()):
            pieces.append(draw(st.sampled_from(people)))
        else:
            email = draw(emails)
            values.append(email)
            pieces.append(email)
    pieces.append(draw(filler))
    return "".join(pieces), values


def _register(people: list[str]) -> None:
    known_entities.register_source(
        "property-people", lambda: [known_entities.KnownEntity(name, "PERSON") for name in people]
    )


@PROPERTY_SETTINGS
@given(sample=texts_with_values())
def test_reidentify_of_pseudonymize_gives_back_the_text(sam: Any, sample: tuple[str, list[str]]) -> None:
    text, values = sample
    _register([v for v in values if "@" not in v])
    try:
        gated = egress_gate(
            user=sam,
            conversation_key="property-roundtrip",
            destinations=[CLOUD],
            parts=[PromptPart("question", text)],
            persist_vault=False,
        )
    finally:
        known_entities._sources.pop("property-people", None)
    sent = gated.messages[0]["content"]
    for value in values:
        assert value not in sent
    restorer = gated.restorer()
    assert restorer.feed(sent) + restorer.finish() == text


@PROPERTY_SETTINGS
@given(value=person, other=person, cuts=st.lists(st.integers(0, 60), max_size=6))
def test_a_value_split_across_stream_chunks_is_restored(value: str, other: str, cuts: list[int]) -> None:
    vault = Vault("stream")
    placeholder = vault.placeholder("PERSON", value)
    answer = f"Dear {placeholder}, as **{placeholder.lower()}** asked, [{placeholder[1:-1]}] and {other}."
    positions = sorted({min(cut, len(answer)) for cut in cuts})
    pieces = [answer[start:end] for start, end in zip([0, *positions], [*positions, len(answer)], strict=True)]
    restorer = PlaceholderRestorer(vault.entries)
    shown = "".join(restorer.feed(piece) for piece in pieces) + restorer.finish()
    assert shown == f"Dear {value}, as **{value}** asked, {value} and {other}."
    assert shown == reidentify(answer, vault.entries)


@PROPERTY_SETTINGS
@given(
    first=st.lists(person, min_size=1, max_size=4, unique=True),
    second=st.lists(person, min_size=1, max_size=4, unique=True),
)
def test_placeholders_never_resolve_to_another_conversations_values(
    sam: Any, first: list[str], second: list[str]
) -> None:
    """Each conversation has its own vault: its restorer can only ever produce its own values."""
    _register([*first, *second])
    try:
        gated_a = egress_gate(user=sam, conversation_key="conv-a", destinations=[CLOUD],
                              parts=[PromptPart("question", " / ".join(first))], persist_vault=False)  # fmt: skip
        gated_b = egress_gate(user=sam, conversation_key="conv-b", destinations=[CLOUD],
                              parts=[PromptPart("question", " / ".join(second))], persist_vault=False)  # fmt: skip
    finally:
        known_entities._sources.pop("property-people", None)
    only_in_a = {name for name in first if name.casefold() not in {other.casefold() for other in second}}
    restorer_b = gated_b.restorer()
    shown = restorer_b.feed(gated_a.messages[0]["content"]) + restorer_b.finish()
    for name in only_in_a:
        assert name not in shown
    restorer_a = gated_a.restorer()
    assert restorer_a.feed(gated_a.messages[0]["content"]) + restorer_a.finish() == " / ".join(first)


def test_unknown_placeholders_are_left_alone() -> None:
    restorer = PlaceholderRestorer({"<PERSON_1>": "Ada"})
    assert (
        restorer.feed("<PERSON_1> met <PERSON_2> and EMAIL_1") + restorer.finish() == "Ada met <PERSON_2> and EMAIL_1"
    )


def test_concurrent_turns_never_share_a_placeholder_number(sam: Any) -> None:
    from governance.vault import vault_entries

    _register(["Ada Lovelace", "Grace Hopper"])
    try:
        for name in ("Ada Lovelace", "Grace Hopper", "Ada Lovelace"):
            egress_gate(user=sam, conversation_key="conv-n", destinations=[CLOUD], parts=[PromptPart("question", name)])
    finally:
        known_entities._sources.pop("property-people", None)
    assert vault_entries(conversation_key="conv-n") == {"<PERSON_1>": "Ada Lovelace", "<PERSON_2>": "Grace Hopper"}
