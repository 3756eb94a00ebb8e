"""Fail closed: blocked history, a vault key that is valid but not the vault's, the vault at rest, and two
writers on one vault at the same moment."""

from __future__ import annotations

import base64
import json
import logging
import threading
from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.db import connections

from audit.models import AuditEvent
from governance import known_entities
from governance.gate import ERROR_VAULT_FAILED, GatedPrompt, PromptPart, egress_gate
from governance.models import ConversationVault
from governance.vault import vault_entries
from tests.governance.conftest import CLOUD, LOCAL
from tests.governance.helpers import blocked_and_audited

CARD = "4111 1111 1111 1111"
IBAN = "DE89 3704 0044 0532 0130 00"


def ask(user: Any, *parts: PromptPart, key: str, destinations: Any = (CLOUD,)) -> GatedPrompt:
    return egress_gate(user=user, conversation_key=key, destinations=list(destinations), parts=list(parts))


def sent_text(gated: GatedPrompt) -> str:
    return "\n".join(message["content"] for message in gated.messages)


# ---- a blocked class in the conversation history stops the call ------------------------------------------
# README, governance: "A blocked class inside a passage, memory or customer field withholds that part;
# inside the question, history or instructions it stops the cloud call." Leaving the history turn out and
# sending the rest would answer a question whose context the model never saw, without telling anyone.
@pytest.mark.django_db
@pytest.mark.parametrize(("value", "data_class"), [(CARD, "PAYMENT_CARD"), (IBAN, "BANK_ACCOUNT")])
def test_a_blocked_value_in_the_history_stops_the_cloud_call(sam: Any, value: str, data_class: str) -> None:
    parts = [
        PromptPart("instructions", "You answer questions about orders.", role="system"),
        PromptPart("history", f"My payment details are {value}.", role="user"),
        PromptPart("history", "Thank you, noted.", role="assistant"),
        PromptPart("question", "When will my order arrive?"),
    ]
    with blocked_and_audited(sam, "conv-history", match=f"conversation history contains {data_class}"):
        ask(sam, *parts, key="conv-history")
    assert value not in json.dumps(AuditEvent.objects.latest("seq").details)

    # with the local model among the candidates it still answers, and nothing leaves
    gated = ask(sam, *parts, key="conv-history", destinations=(CLOUD, LOCAL))
    assert gated.destinations == (LOCAL.key,) and gated.manifest["local_only"] is True
    refused = gated.manifest["destinations_refused"]
    assert [row["destination"] for row in refused] == [CLOUD.key]
    assert f"conversation history contains {data_class}" in refused[0]["reason"]
    assert all(part["decision"] == "sent" for part in gated.manifest["parts"])  # to the local model, whole


@pytest.mark.django_db
def test_a_blocked_value_in_the_instructions_stops_the_cloud_call_too(sam: Any) -> None:
    parts = [
        PromptPart("instructions", "Use the key sk-proj-abcdefghijklmnopqrstuvwxyz0123 for lookups.", role="system"),
        PromptPart("question", "Hello"),
    ]
    with blocked_and_audited(sam, "conv-instructions", match="instructions contains CREDENTIAL"):
        ask(sam, *parts, key="conv-instructions")


@pytest.mark.django_db
def test_the_same_value_in_a_passage_only_withholds_the_passage(sam: Any) -> None:
    """The contrast the rule draws: passages are withheld, the question still goes."""
    gated = ask(
        sam,
        PromptPart("chunk", f"Test card: {CARD}.", source={"classification": "internal"}),
        PromptPart("question", "Which cards do we accept?"),
        key="conv-passage",
    )
    assert sent_text(gated) == "Which cards do we accept?"
    assert [part["decision"] for part in gated.manifest["parts"]] == ["withheld", "sent"]


# ---- the vault key --------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_valid_key_that_is_not_the_vaults_fails_closed_and_leaks_nothing(
    sam: Any, settings: Any, customer_names: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    right_key = Fernet.generate_key().decode()
    settings.GOVERNANCE_VAULT_KEY = right_key
    first = ask(sam, PromptPart("question", f"Who is {customer_names[0]}?"), key="conv-keys")
    assert sent_text(first) == "Who is <PERSON_1>?"
    stored = ConversationVault.objects.get(conversation_key="conv-keys").ciphertext

    settings.GOVERNANCE_VAULT_KEY = Fernet.generate_key().decode()  # a real Fernet key, but another one
    caplog.set_level(logging.DEBUG)
    question = f"Is {customer_names[1]} related to {customer_names[0]}?"
    with blocked_and_audited(sam, "conv-keys") as blocked:
        ask(sam, PromptPart("question", question), key="conv-keys", destinations=(CLOUD, LOCAL))
    assert str(blocked.value) == ERROR_VAULT_FAILED  # clear, and the same for every vault failure
    assert "egress gate: vault failed (InvalidToken)" in caplog.messages  # the cause, for the administrator
    # nothing leaks: not in the message, the audit event or the logs, and the vault is left as it was
    for value in customer_names:
        assert value not in str(blocked.value) and value not in caplog.text
        assert value not in json.dumps(AuditEvent.objects.latest("seq").details)
    assert ConversationVault.objects.get(conversation_key="conv-keys").ciphertext == stored
    # re-identifying with this key fails too; it never hands back an empty vault that would show placeholders
    with pytest.raises(InvalidToken):
        vault_entries(conversation_key="conv-keys")

    settings.GOVERNANCE_VAULT_KEY = right_key  # with the right key back, the conversation goes on unchanged
    again = ask(sam, PromptPart("question", question), key="conv-keys")
    assert sent_text(again) == "Is <PERSON_2> related to <PERSON_1>?"
    assert vault_entries(conversation_key="conv-keys") == {
        "<PERSON_1>": customer_names[0],
        "<PERSON_2>": customer_names[1],
    }


@pytest.mark.django_db
def test_the_vault_is_fernet_ciphertext_that_only_its_key_opens(
    sam: Any, settings: Any, customer_names: list[str]
) -> None:
    key = Fernet.generate_key()
    settings.GOVERNANCE_VAULT_KEY = key.decode()
    ask(sam, PromptPart("question", f"Call {customer_names[0]}"), key="conv-at-rest")
    token = ConversationVault.objects.get(conversation_key="conv-at-rest").ciphertext.encode()

    # a Fernet token: version byte 0x80, timestamp, IV, AES-CBC ciphertext, HMAC; encoding is not encryption
    raw = base64.urlsafe_b64decode(token)
    assert raw[0] == 0x80 and len(raw) >= 1 + 8 + 16 + 16 + 32
    for value in (customer_names[0], "Okonkwo", "PERSON", "entries"):
        assert value.encode() not in raw and value.encode() not in token
    assert json.loads(Fernet(key).decrypt(token)) == {
        "entries": {"<PERSON_1>": customer_names[0]},
        "counters": {"PERSON": 1},
    }
    with pytest.raises(InvalidToken):
        Fernet(Fernet.generate_key()).decrypt(token)


# ---- two writers on one vault ---------------------------------------------------------------------------
PEOPLE = ["Ada Lovelace", "Grace Hopper", "Katherine Johnson", "Hedy Lamarr", "Joan Clarke", "Mary Jackson"]
TURNS = 6


@pytest.mark.django_db(transaction=True)
def test_concurrent_turns_on_one_vault_lose_and_duplicate_no_placeholder(sam: Any) -> None:
    """Threads with their own database connections ask in the same conversation at the same moment, each
    naming people the others name too: every person gets exactly one placeholder, numbered without gaps,
    and every turn's placeholders still mean what they meant when it was sent."""
    known_entities.register_source(
        "concurrent-people", lambda: [known_entities.KnownEntity(n, "PERSON") for n in PEOPLE]
    )
    known_entities.known_entity_findings("warm the dictionary before the threads start")
    writers = 3
    barrier = threading.Barrier(writers)
    turns: list[tuple[str, GatedPrompt]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def converse(worker: int) -> None:
        try:
            barrier.wait(timeout=60)
            for turn in range(TURNS):
                # each turn names two people; over the turns every writer names everyone
                names = [PEOPLE[(worker + turn) % len(PEOPLE)], PEOPLE[(worker * 2 + turn + 1) % len(PEOPLE)]]
                question = f"Did {names[0]} meet {names[1]}?"
                gated = ask(sam, PromptPart("question", question), key="conv-concurrent")
                with lock:
                    turns.append((question, gated))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=converse, args=(worker,)) for worker in range(writers)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    finally:
        known_entities._sources.pop("concurrent-people", None)
        known_entities.invalidate()
    assert not any(thread.is_alive() for thread in threads)
    assert not errors, errors
    assert len(turns) == writers * TURNS

    final = vault_entries(conversation_key="conv-concurrent")
    assert sorted(final.values()) == sorted(PEOPLE)  # none lost, none twice
    assert set(final) == {f"<PERSON_{number}>" for number in range(1, len(PEOPLE) + 1)}  # no gap, no reuse
    for question, gated in turns:
        restorer = gated.restorer()
        assert restorer.feed(sent_text(gated)) + restorer.finish() == question
        for placeholder in gated.manifest["placeholders"]:
            assert gated._vault_entries[placeholder] == final[placeholder]  # type: ignore[attr-defined]
        assert not any(name in sent_text(gated) for name in PEOPLE)
