"""The built-in offline model: answers extractively from the context passages in the prompt.

Pure Python, no network. The passage format is the one the assistant builds (`portal.assistant.pipeline.build`):
one user message per passage, starting with "[n] " then "Source: <title>" and the passage text. The router
wraps this in a litellm custom provider so it runs through the same Router path as any cloud model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OFFLINE_LABEL = "Offline answer (no cloud model configured):"
# The same model answering for other reasons says which (chosen by services.model_stream):
OFFLINE_LABEL_FALLBACK = "Offline answer (no cloud model could answer):"
OFFLINE_LABEL_BUDGET = "Offline answer (the AI budget is used up):"
OFFLINE_LABEL_LOCAL_ONLY = "Offline answer (this context may not leave the server):"
NO_PASSAGES = (
    "I found no passages in the knowledge bases you can read that answer this question, "
    "so there is nothing to quote. Try other words, or ask an administrator to configure a cloud model."
)
MAX_SENTENCES = 3
_PASSAGE = re.compile(r"^\[(\d+)\]\s+Source:\s*(.*?)(?:\n|$)(.*)", re.DOTALL)
_WORD = re.compile(r"[\w'-]+", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "our",
        "should",
        "that",
        "the",
        "their",
        "there",
        "this",
        "to",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "me",
        "my",
        "please",
        "tell",
        "about",
    ]
)


@dataclass(frozen=True)
class Passage:
    number: int
    title: str
    text: str


def parse_messages(messages: list[dict[str, str]]) -> tuple[list[Passage], str]:
    """Split a chat prompt into the context passages and the question (the last other user message)."""
    passages: list[Passage] = []
    question = ""
    for message in messages:
        content = message.get("content") or ""
        if not isinstance(content, str) or message.get("role") != "user":
            continue
        match = _PASSAGE.match(content.strip())
        if match:
            passages.append(Passage(int(match.group(1)), match.group(2).strip(), match.group(3).strip()))
        else:
            question = content
    return passages, question


def _terms(text: str) -> set[str]:
    return {word.lower() for word in _WORD.findall(text) if word.lower() not in STOPWORDS and len(word) > 1}


def extractive_answer(messages: list[dict[str, str]], label: str = OFFLINE_LABEL) -> str:
    passages, question = parse_messages(messages)
    if not passages:
        return f"{label} {NO_PASSAGES}"
    wanted = _terms(question)
    scored: list[tuple[float, int, int, str]] = []
    for passage in passages:
        for position, sentence in enumerate(_SENTENCE_END.split(passage.text)):
            sentence = " ".join(sentence.split())
            if len(sentence) < 20:
                continue
            overlap = len(wanted & _terms(sentence))
            # earlier passages rank higher in retrieval, earlier sentences tend to carry the topic
            scored.append((overlap - 0.01 * position, -passage.number, position, f"{sentence} [{passage.number}]"))
    if not scored:
        return f"{label} {NO_PASSAGES}"
    best = sorted(scored, reverse=True)[:MAX_SENTENCES]
    if best[0][0] <= 0:
        best = best[:1]
    lines = [f"{label} the closest passages say:", ""]
    lines += [f"- {sentence}" for *_, sentence in best]
    cited = sorted({-item[1] for item in best})
    titles = {passage.number: passage.title for passage in passages}
    lines += ["", "Sources: " + "; ".join(f"[{number}] {titles[number]}" for number in cited)]
    return "\n".join(lines)
