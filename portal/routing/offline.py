"""The built-in offline model: answers extractively from the context passages in the prompt.

No network. The passage format is the one the assistant builds (`portal.assistant.pipeline.build`): one user
message per passage, starting with "[n] " then "Source: <title>" and the passage text; the customer record, when
the conversation is about one, comes as one "Customer <field>: <value>" message per field. The router wraps this
in a litellm custom provider so it runs through the same Router path as any cloud model.

Each sentence of the passages is scored by
- meaning: cosine to the question with the local sentence-embedding model (`knowledge.embeddings`, the ONNX
  MiniLM the search uses), for the sentences the cheaper scores shortlist;
- terms: BM25 over the passages' sentences (idf from these sentences; a misspelt word matches by its prefix);
- the question's type: how many / how much / when -> numbers, dates and amounts; who -> names and roles;
  can / may / is ... allowed -> rules (must, may, not, only, days, approval);
- retrieval order: a small prior for the earlier passages.
A chosen sentence that starts with a pronoun or a continuation ("This", "However") keeps the one before it. When
the question asks for a field of the customer record (e-mail, phone, address, tier, ...), that line comes first.
Without the embedding model (not installed, or failing) the other scores rank alone.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

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


SHORTLIST = 10  # sentences embedded per answer: the cheaper scores rank the rest out first (16: slower, no better)
WEIGHT_MEANING = 0.5
WEIGHT_TERMS = 0.5
MIN_WORDS = 5  # shorter sentences are fragments ("Northwind Health Plus.")
CUE_BONUS = 0.12
RANK_PRIOR = 0.02  # per passage below the first
TRUNCATED_PENALTY = 0.1  # a sentence the chunking cut off
NEAR_DUPLICATE = 0.8  # term overlap (Jaccard) above which a second sentence adds nothing (overlapping chunks)
FIELD_TEXT_LIMIT = 300
CUSTOMER_RECORD = "customer record"
_CUSTOMER_LINE = re.compile(r"^Customer ([a-z_]+): (.*)", re.DOTALL)
_MEMORY_LINE = re.compile(r"^Remembered \(")
_HEADING_END = tuple(".!?:;,")
_CONTINUATION = re.compile(
    r"^(it|its|this|these|that|those|they|their|them|such|he|she|his|her|however|also|additionally|furthermore|"
    r"moreover|otherwise|therefore|then|but|and|or|in addition|in this case|as a result|if so|if not)\b",
    re.IGNORECASE,
)
# question types and the sentences that answer them
_ASKS_NUMBER = re.compile(
    r"\b(how (many|much|long|often|soon|old|far)|when|what (date|time|day|year|percentage|amount|rate|age)|"
    r"deadline|cost|price|fee|limit|maximum|minimum|deductible|percent)\b",
    re.IGNORECASE,
)
_HAS_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|"
    r"hundred|thousand|annual(ly)?|monthly|weekly|daily|yearly|quarterly|percent|january|february|march|april|"
    r"may|june|july|august|september|october|november|december|monday|tuesday|wednesday|thursday|friday)\b",
    re.IGNORECASE,
)
# the words that say which kind of answer is wanted, not what it is about ("how many days": "days")
_QUESTION_PHRASE = re.compile(r"\bhow (many|much|long|often|soon|old|far)\b", re.IGNORECASE)
_ASKS_PERSON = re.compile(r"^\W*(who|whom|whose)\b|\b(who|whom) (is|are|should|do|does|can|to)\b", re.IGNORECASE)
_HAS_PERSON = re.compile(
    r"(?<![.!?] )(?<!^)\b[A-Z][a-z]+ [A-Z][a-z]+\b|\b(manager|supervisor|department|team|human resources|HR|officer|"
    r"director|representative|administrator|lead|head of|contact)\b"
)
_ASKS_RULE = re.compile(
    r"^\W*(can|may|could|must)\b|\b(allowed|permitted|eligible|able to|possible|required|need to|have to|"
    r"am i|are we|are employees|is it ok)\b",
    re.IGNORECASE,
)
_HAS_RULE = re.compile(
    r"\b(must|may|cannot|can't|not|only|required|requires?|allowed|permitted|prohibited|eligible|up to|at least|"
    r"no more than|maximum|minimum|days?|weeks?|approval|approved?)\b",
    re.IGNORECASE,
)
# customer record fields (as portal.customers names them) and the words a question asks for them with;
# the first field that matches wins, so e-mail comes before the postal address ("e-mail address")
CUSTOMER_FIELD_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("emails", r"\be-?mails?\b|\bmail address"),
        ("phones", r"\b(tele)?phones?\b|\bmobile\b|\bcell\b|\bcall (them|him|her)\b|\bphone number"),
        ("account_numbers", r"\baccount (numbers?|no|ids?)\b"),
        ("postal_address", r"\b(postal|mailing|street|home)? ?address\b|\bwhere (do|does|is) .* (live|located)\b"),
        ("tier", r"\btier\b|\bsegment\b|\blevel\b"),
        ("organisation", r"\borgani[sz]ation\b|\bcompany\b|\bemployer\b|\bworks? for\b"),
        ("predictions", r"\bchurn\b|\bpredict|\blikely to\b|\bnext channel\b|\brisk\b"),
        ("interactions", r"\binteractions?\b|\blast (contact|call|spoke|time)\b|\bhistory\b|\bcontacted\b"),
        ("notes", r"\bnotes?\b"),
        ("name", r"\b(customer'?s|their|his|her|full) name\b|\bwhat is .* called\b"),
    )
)


@dataclass(frozen=True)
class Passage:
    number: int
    title: str
    text: str


@dataclass(frozen=True)
class Prompt:
    passages: list[Passage]
    question: str
    customer: dict[str, str] = field(default_factory=dict)  # field name -> value, as pipeline.build sends them


@dataclass
class Sentence:
    passage: int  # the passage's number
    rank: int  # the passage's place in the prompt (0 for the first)
    index: int  # place in its passage
    text: str
    terms: list[str]
    truncated: bool
    score: float = 0.0
    term_score: float = 0.0  # BM25 share of the best sentence's


def parse_prompt(messages: list[dict[str, str]]) -> Prompt:
    """The passages, the customer record's fields and the question (the last other user message)."""
    passages: list[Passage] = []
    customer: dict[str, str] = {}
    question = ""
    for message in messages:
        content = message.get("content") or ""
        if not isinstance(content, str) or message.get("role") != "user":
            continue
        stripped = content.strip()
        if match := _PASSAGE.match(stripped):
            passages.append(Passage(int(match.group(1)), match.group(2).strip(), match.group(3).strip()))
        elif match := _CUSTOMER_LINE.match(stripped):
            customer[match.group(1)] = match.group(2).strip()
        elif not _MEMORY_LINE.match(stripped):
            question = content
    return Prompt(passages, question, customer)


def parse_messages(messages: list[dict[str, str]]) -> tuple[list[Passage], str]:
    """Split a chat prompt into the context passages and the question (the last other user message)."""
    prompt = parse_prompt(messages)
    return prompt.passages, prompt.question


def _stem(word: str) -> str:
    word = word.lower().strip("'-")
    if word.endswith("'s"):
        word = word[:-2]
    for suffix, keep in (("ies", 4), ("ing", 5), ("ed", 4), ("es", 5), ("s", 3)):
        if word.endswith(suffix) and len(word) > keep and not word.endswith("ss"):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def _term_list(text: str) -> list[str]:
    return [_stem(word) for word in _WORD.findall(text) if word.lower() not in STOPWORDS and len(word) > 1]


def _terms(text: str) -> set[str]:
    return set(_term_list(text))


def _looks_like_heading(line: str) -> bool:
    if line.startswith("#"):
        return True
    return (
        not line.endswith(_HEADING_END)
        and len(line) < 70
        and len(line.split()) <= 8
        and (line[0].isupper() or line[0].isdigit())
    )


def _sentences(passage: Passage, rank: int) -> list[Sentence]:
    """The passage's sentences, its heading lines left out (they name a topic, they do not answer)."""
    pieces: list[str] = []
    buffer: list[str] = []
    for raw in passage.text.splitlines():
        line = " ".join(raw.split())
        if not line:
            continue
        starts_block = not buffer or buffer[-1].endswith((".", "!", "?", ":"))
        if starts_block and _looks_like_heading(line):
            if buffer:
                pieces.append(" ".join(buffer))
                buffer = []
            continue
        buffer.append(line)
    if buffer:
        pieces.append(" ".join(buffer))
    texts = [sentence for piece in pieces for sentence in _SENTENCE_END.split(piece)]
    if not texts:  # a passage that is only a heading
        texts = [" ".join(passage.text.split())]
    sentences = []
    for index, text in enumerate(texts):
        text = text.lstrip("#").strip()
        if len(text) < 20 or len(text.split()) < MIN_WORDS:
            continue
        truncated = (index == 0 and text[0].islower()) or (
            index == len(texts) - 1 and not text.endswith((".", "!", "?"))
        )
        sentences.append(Sentence(passage.number, rank, index, text, _term_list(text), truncated))
    return sentences


def _term_scores(question: list[str], sentences: Sequence[Sentence]) -> list[float]:
    """BM25 of each sentence for the question's terms; a term no sentence has matches words with its prefix."""
    count = len(sentences)
    frequency: dict[str, int] = {}
    for sentence in sentences:
        for term in set(sentence.terms):
            frequency[term] = frequency.get(term, 0) + 1
    average = sum(len(s.terms) for s in sentences) / count if count else 1.0
    wanted: dict[str, float] = {}
    for term in dict.fromkeys(question):
        if term in frequency:
            wanted[term] = 1.0
        elif len(term) >= 5:  # "servises", "gendr": the words sharing its first four letters, a little less
            for known in frequency:
                if known[:4] == term[:4] and known not in wanted:
                    wanted[known] = 0.7
    scores = []
    for sentence in sentences:
        counts: dict[str, int] = {}
        for term in sentence.terms:
            counts[term] = counts.get(term, 0) + 1
        norm = 1.2 * (0.25 + 0.75 * len(sentence.terms) / (average or 1.0))
        score = 0.0
        for term, weight in wanted.items():
            tf = counts.get(term, 0)
            if tf:
                idf = math.log(1 + (count - frequency[term] + 0.5) / (frequency[term] + 0.5))
                score += weight * idf * tf * 2.2 / (tf + norm)
        scores.append(score)
    return scores


def _cue_scores(question: str, sentences: Sequence[Sentence]) -> list[float]:
    cues = [
        (asks, has)
        for asks, has in ((_ASKS_NUMBER, _HAS_NUMBER), (_ASKS_PERSON, _HAS_PERSON), (_ASKS_RULE, _HAS_RULE))
        if asks.search(question)
    ]
    return [CUE_BONUS * sum(bool(has.search(s.text)) for _, has in cues) for s in sentences]


_vector_cache: OrderedDict[str, Any] = OrderedDict()
_vector_lock = threading.Lock()
VECTOR_CACHE_SIZE = 4096


def _meaning_scores(question: str, texts: list[str]) -> list[float] | None:
    """Cosine of each text to the question with the local embedding model; None when it cannot load."""
    try:
        from knowledge import embeddings

        question_vector = embeddings.embed_query(question)  # usually cached: the search just embedded it
        prefix = f"{embeddings.model_name()}|{embeddings.configured_backend()}|"
        with _vector_lock:
            missing = [text for text in dict.fromkeys(texts) if prefix + text not in _vector_cache]
        vectors: Any = embeddings.embed_texts(missing) if missing else []
        with _vector_lock:
            for text, vector in zip(missing, vectors, strict=True):
                _vector_cache[prefix + text] = vector
            found = [_vector_cache.get(prefix + text) for text in texts]
            while len(_vector_cache) > VECTOR_CACHE_SIZE:
                _vector_cache.popitem(last=False)
        return [float(vector @ question_vector) if vector is not None else 0.0 for vector in found]
    except Exception as error:  # noqa: BLE001 - the term scores still answer
        logger.warning("offline model: no sentence embeddings (%s); ranking by terms", type(error).__name__)
        return None


def rank_sentences(question: str, passages: Sequence[Passage]) -> list[Sentence]:
    """The passages' sentences, best answer first, each with its score."""
    sentences = [s for rank, passage in enumerate(passages) for s in _sentences(passage, rank)]
    if not sentences:
        return []
    terms = _term_scores(_term_list(_QUESTION_PHRASE.sub(" ", question)), sentences)
    best_terms = max(terms) or 1.0
    cues = _cue_scores(question, sentences)
    for sentence, term, cue in zip(sentences, terms, cues, strict=True):
        sentence.term_score = term / best_terms
        prior = -RANK_PRIOR * sentence.rank - (TRUNCATED_PENALTY if sentence.truncated else 0.0)
        sentence.score = sentence.term_score + cue + prior
    shortlist = sorted(sentences, key=lambda s: -s.score)[:SHORTLIST]
    meaning = _meaning_scores(question, [s.text for s in shortlist])
    if meaning is not None:
        best_meaning = max(meaning) if max(meaning) > 0 else 1.0
        for sentence, cosine in zip(shortlist, meaning, strict=True):
            others = sentence.score - sentence.term_score  # cues and priors
            sentence.score = WEIGHT_MEANING * cosine / best_meaning + WEIGHT_TERMS * sentence.term_score + others
    return sorted(shortlist, key=lambda s: -s.score)


def _chosen(ranked: list[Sentence], every: dict[tuple[int, int], Sentence], limit: int) -> list[tuple[Sentence, str]]:
    """The best sentences without near-duplicates; one that continues the sentence before it keeps that one
    (or joins its point when it was chosen already)."""
    points: list[tuple[Sentence, list[str], int]] = []  # first sentence, texts, index of the last one
    used: set[tuple[int, int]] = set()
    seen_terms: list[set[str]] = []
    for sentence in ranked:
        if len(points) >= limit:
            break
        terms = set(sentence.terms)
        if (sentence.passage, sentence.index) in used or any(
            len(terms & other) / (len(terms | other) or 1) >= NEAR_DUPLICATE for other in seen_terms
        ):
            continue
        used.add((sentence.passage, sentence.index))
        before = every.get((sentence.passage, sentence.index - 1)) if _CONTINUATION.match(sentence.text) else None
        joined = next(
            (
                i
                for i, (first, _, last) in enumerate(points)
                if first.passage == sentence.passage and last == sentence.index - 1
            ),
            None,
        )
        if before is not None and joined is not None:
            first, texts, _ = points[joined]
            points[joined] = (first, [*texts, sentence.text], sentence.index)
            continue
        texts = [sentence.text]
        if before is not None and (before.passage, before.index) not in used:
            texts.insert(0, before.text)
            used.add((before.passage, before.index))
            terms |= set(before.terms)
        seen_terms.append(terms)
        points.append((sentence, texts, sentence.index))
    return [(first, " ".join(texts) + f" [{first.passage}]") for first, texts, _ in points]


def customer_field_asked(question: str, customer: dict[str, str]) -> str | None:
    """The customer record's field the question asks for, when the prompt carries it."""
    for name, words in CUSTOMER_FIELD_WORDS:
        if name in customer and words.search(question):
            return name
    return None


def extractive_answer(messages: list[dict[str, str]], label: str = OFFLINE_LABEL) -> str:
    prompt = parse_prompt(messages)
    asked = customer_field_asked(prompt.question, prompt.customer)
    points: list[str] = []
    if asked is not None:
        value = " ".join(prompt.customer[asked].split())
        value = value if len(value) <= FIELD_TEXT_LIMIT else value[:FIELD_TEXT_LIMIT].rstrip() + " …"
        points.append(f"Customer {asked.replace('_', ' ')}: {value} ({CUSTOMER_RECORD})")
    every = {(s.passage, s.index): s for p in prompt.passages for s in _sentences(p, 0)}
    ranked = rank_sentences(prompt.question, prompt.passages) if prompt.passages else []
    # the record answers a question about its field: one passage sentence at most beside it
    chosen = _chosen(ranked, every, 1 if asked else MAX_SENTENCES)
    if not points and not chosen:
        return f"{label} {NO_PASSAGES}"
    if not asked and chosen and ranked[0].score <= 0:
        chosen = chosen[:1]
    points += [text for _, text in chosen]
    title = "the customer record says" if asked and not chosen else "the closest passages say"
    lines = [f"{label} {title}:", ""]
    lines += [f"- {point}" for point in points]
    titles = {passage.number: passage.title for passage in prompt.passages}
    sources = [f"[{number}] {titles[number]}" for number in sorted({s.passage for s, _ in chosen})]
    if asked:
        sources.insert(0, CUSTOMER_RECORD)
    lines += ["", "Sources: " + "; ".join(sources)]
    return "\n".join(lines)
