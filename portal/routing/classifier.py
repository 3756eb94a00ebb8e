"""A transparent local classifier: which kind of task a question is, and why.

Keyword cues per task type, counted on word boundaries, with the question's length as a tie-breaker.
It is meant to be read and replaced (by trained local models later), so every answer carries its reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CUES: dict[str, tuple[str, ...]] = {
    "summarize": (
        "summarize", "summarise", "summary", "tl;dr", "tldr", "key points", "main points", "recap", "overview of",
        "in short", "condense", "shorten", "gist",
    ),
    "draft": (
        "draft", "write", "compose", "rewrite", "reply to", "email", "e-mail", "letter", "announcement",
        "proposal", "template", "polish", "rephrase",
    ),
    "analyze": (
        "compare", "comparison", "trade-off", "trade-offs", "tradeoff", "pros and cons", "weigh", "evaluate",
        "analyze", "analyse", "analysis", "why does", "why do", "why is", "root cause", "implications",
        "risk", "risks", "should we", "which is better", "recommend", "assess", "versus", "vs",
    ),
    "research": (
        "research", "investigate", "in depth", "in-depth", "comprehensive", "literature", "all sources",
        "state of the art", "survey", "explore", "thorough", "deep dive",
    ),
}  # fmt: skip

DESCRIPTIONS = {
    "routine": "a short factual question",
    "summarize": "asks for a summary",
    "draft": "asks to write or rework text",
    "analyze": "asks to compare and weigh options",
    "research": "asks for broad, in-depth investigation",
}

LONG_QUESTION_WORDS = 60  # long, multi-part questions need more reasoning than a routine answer


@dataclass(frozen=True)
class Classification:
    task_type: str
    reason: str
    matched: tuple[str, ...]


def _pattern(cue: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w-])" + re.escape(cue) + r"(?![\w-])", re.IGNORECASE)


_PATTERNS = {task: [(cue, _pattern(cue)) for cue in cues] for task, cues in CUES.items()}
# When two task types match equally often, the more demanding one wins.
_PRIORITY = ("research", "analyze", "draft", "summarize")


def classify(question: str) -> Classification:
    words = len(question.split())
    matches: dict[str, list[str]] = {}
    for task, patterns in _PATTERNS.items():
        found = [cue for cue, pattern in patterns if pattern.search(question)]
        if found:
            matches[task] = found
    if matches:
        best = max(_PRIORITY, key=lambda task: (len(matches.get(task, [])), -_PRIORITY.index(task)))
        cues = tuple(matches[best])
        quoted = ", ".join(f"'{cue}'" for cue in cues)
        reason = f"{best}: {DESCRIPTIONS[best]} (matched {quoted})"
        others = [task for task in matches if task != best]
        if others:
            reason += "; also matched " + ", ".join(others)
        return Classification(best, reason, cues)
    if words > LONG_QUESTION_WORDS:
        return Classification(
            "analyze", f"analyze: a long question ({words} words) with no specific cue, so it gets more reasoning", ()
        )
    return Classification("routine", f"routine: {DESCRIPTIONS['routine']} ({words} words, no task cue)", ())
