"""The canary test: known values seeded in customers and documents never reach a cloud provider.

Many assistant questions go through the real pipeline (portal.assistant.pipeline.answer -> egress gate ->
routing -> litellm -> the fake provider over HTTP). Every recorded request body is searched for every
canary value (exact, case-folded and NFKC-normalised); every answer shown must have the originals back.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

import pytest

from governance import known_entities

pytestmark = pytest.mark.django_db

CUSTOMER_NAME = "Wilhelmina Castellanos-Jäger"
CUSTOMER_EMAIL = "w.castellanos@fjordmail.test"
CUSTOMER_PHONE = "+44 20 7946 0958"
CUSTOMER_IBAN = "GB82WEST12345698765432"
CUSTOMER_ORG = "Quillfeather Analytics"
CARD = "4111 1111 1111 1111"
SSN = "460-89-9847"
API_KEY = "sk-proj-Zq8xN3vK7pL2mR5tW9yB4cF6hJ1"
LOCAL_SECRET = "Operation Bluebird"
CANARIES = [
    CUSTOMER_NAME,
    CUSTOMER_EMAIL,
    CUSTOMER_PHONE,
    CUSTOMER_IBAN,
    CUSTOMER_ORG,
    CARD,
    SSN,
    API_KEY,
    LOCAL_SECRET,
]
PLACEHOLDER = re.compile(r"<[A-Z_]+_\d+>")

QUESTIONS = [
    f"What do we know about {CUSTOMER_NAME}?",
    f"Please draft an email to {CUSTOMER_EMAIL} about the refund.",
    "wilhelmina castellanos-jager called again, what is the refund policy?",
    f"WILHELMINA CASTELLANOS-JÄGER from {CUSTOMER_ORG.upper()} asks about holidays.",
    f"Call {CUSTOMER_PHONE} and explain the refund rules.",
    f"Her IBAN is {CUSTOMER_IBAN}; when is the refund paid?",
    f"Is card {CARD} eligible for a refund?",
    f"Check SSN {SSN} for the refund file.",
    f"Our key {API_KEY} stopped working, what now?",
    "Summarise the refund policy for our customer.",
    "What is the merger code name in the board notes?",
    f"Tell {CUSTOMER_NAME.split()[0]} {CUSTOMER_NAME.split()[1]} that refunds take 14 days.",
]


def _variants(value: str) -> set[str]:
    return {
        value,
        value.casefold(),
        unicodedata.normalize("NFKC", value),
        unicodedata.normalize("NFKC", value).casefold(),
    }


def _echo_placeholders(body: dict[str, Any]) -> str:
    """The fake model repeats every placeholder it got, in the light variations real models produce."""
    found = sorted(set(PLACEHOLDER.findall(json.dumps(body.get("messages", body), ensure_ascii=False))))
    if not found:
        return "Refunds are paid within 14 days."
    styles = ["**{}**", "{}", "[{}]"]
    words = []
    for index, placeholder in enumerate(found):
        token = placeholder if index % 2 == 0 else placeholder[1:-1].lower()
        words.append(styles[index % 3].format(token))
    return "Regarding " + ", ".join(words) + ": refunds are paid within 14 days."


@pytest.fixture
def seeded(sam: Any, fake_provider: Any, monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Any]:
    from portal.routing.router import cooldowns, router_cache
    from tests.assistant.factories import AssistantProfileFactory, ConversationFactory, knowledge_base_with
    from tests.customers.factories import CustomerFactory
    from tests.routing.factories import CatalogModelFactory

    settings.ROUTING_RETRY_MIN_SECONDS = 0
    cooldowns.clear()
    router_cache.clear()
    monkeypatch.setenv("FAKE_PROVIDER_KEY", "sk-fake-canary-key-0123456789")
    CatalogModelFactory.create(display_name="Fake cloud", api_base=fake_provider.url, tier="standard")
    customer = CustomerFactory.create(
        name=CUSTOMER_NAME,
        organisation=CUSTOMER_ORG,
        emails=[CUSTOMER_EMAIL],
        phones=[CUSTOMER_PHONE],
        account_numbers=[CUSTOMER_IBAN],
        postal_address="17 Larkspur Crescent\nDunmore",
    )
    handbook = knowledge_base_with(
        name="Refund handbook",
        passages=[
            ("Refund policy", f"Refunds are paid within 14 days. Contact {CUSTOMER_NAME} ({CUSTOMER_EMAIL}).", 1),
            ("Refund example", f"{CUSTOMER_ORG} was refunded to {CUSTOMER_IBAN}, phone {CUSTOMER_PHONE}.", 2),
            ("Card refunds", f"Refund to card {CARD}, holder SSN {SSN}, system key {API_KEY}.", 3),
        ],
    )
    board = knowledge_base_with(
        name="Board notes",
        passages=[("Merger", f"The merger code name is {LOCAL_SECRET}; refund reserves are kept apart.", None)],
    )
    board.classification = "local_only"
    board.save(update_fields=["classification"])
    profile = AssistantProfileFactory.create(name="Canary helper", usable_by=["Staff"], knowledge_bases=[handbook])
    # Every passage of a small base is retrieved, so the local-only notes get a profile of their own: its
    # prompts always carry local-only knowledge and must never go to the cloud.
    board_profile = AssistantProfileFactory.create(
        name="Board helper", usable_by=["Staff"], knowledge_bases=[handbook, board]
    )
    fake_provider.state.reply = _echo_placeholders
    known_entities.invalidate()
    conversations = [
        ConversationFactory.create(owner=sam, profile=profile, customer_id=customer.pk),
        ConversationFactory.create(owner=sam, profile=profile),
        ConversationFactory.create(owner=sam, profile=board_profile),
    ]
    yield conversations
    cooldowns.clear()


def test_no_canary_value_ever_reaches_the_provider_and_answers_are_restored(
    sam: Any, seeded: list[Any], fake_provider: Any
) -> None:
    from tests.assistant.helpers import run_answer, stored_answer

    answers = []
    for index, question in enumerate(QUESTIONS):
        events = run_answer(user=sam, conversation=seeded[index % 2], question=question)
        answers.append(stored_answer(events))
    requests_before_board = len(fake_provider.requests)
    for question in ("What is the merger code name?", f"Does {CUSTOMER_NAME} know the merger code name?"):
        board_answer = stored_answer(run_answer(user=sam, conversation=seeded[2], question=question))
        assert board_answer.manifest["local_only"] is True  # only the local model was cleared
        answers.append(board_answer)
    assert len(fake_provider.requests) == requests_before_board

    assert fake_provider.requests, "the cloud model was never called: the test would prove nothing"
    for request in fake_provider.requests:
        bodies = [request.text, json.dumps(request.body, ensure_ascii=False)]
        for body in bodies:
            for form in (body, body.casefold(), unicodedata.normalize("NFKC", body).casefold()):
                for canary in CANARIES:
                    for variant in _variants(canary):
                        assert variant not in form, f"a canary value reached the provider ({CANARIES.index(canary)})"
        assert "jager" not in json.dumps(request.body).casefold()  # the accent-stripped spelling too

    completed = [answer for answer in answers if answer.status == "complete"]
    assert completed
    for answer in completed:
        assert not PLACEHOLDER.search(answer.content), answer.content
        assert not re.search(r"\b(PERSON|EMAIL|PHONE|CUSTOMER_FIELD)_\d+\b", answer.content, re.IGNORECASE)
    shown = "\n".join(answer.content for answer in completed)
    assert CUSTOMER_NAME in shown and CUSTOMER_EMAIL in shown
    for answer in answers:
        manifest = json.dumps(answer.manifest, ensure_ascii=False)
        for canary in CANARIES:
            assert canary not in manifest
