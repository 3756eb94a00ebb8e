"""Answer quality of the built-in offline model on a business QA set (Contoso's 50 questions by default).

    manage.py eval_offline [--qa ../shared/data/business_kb/contoso] [--limit-queries N] [--keep | --reuse] [--json]

Each question goes the assistant's way: the same search (`knowledge.selectors.retrieve`, hybrid) with the
pipeline's passage count (an assistant profile's default `passages`), the prompt from `pipeline.build`, then
`extractive_answer` on those messages. The documents are ingested through the live services into their own
knowledge base ("eval-offline: <folder>"); `--keep` leaves it, `--reuse` answers from a kept one, so two runs
(before and after a change to the model) see exactly the same passages.

The judging rule, fixed so runs compare:

- The truth's key fact is the truth without its trailing "[file#page=N]" citations. Its content words are its
  words (lower case, a plural or possessive "s" dropped) minus stopwords and one-letter words; its numbers are
  the tokens with a digit, compared by their digits ("$1,500" = "1500", "20%" = "20").
- `offline_key_fact_share`: answers that contain the key fact. A truth with numbers counts when every one of
  its numbers is in the answer; a truth without counts when >= 60 % of its content words are.
- `offline_content_word_recall_mean`: the mean share of the truth's content words in the answer (no threshold).
- `offline_source_cited_share`: answers that cite (as [n] in a point) a passage of the truth's cited file.
- `offline_first_point_source_share`: answers whose first point cites a passage of the truth's cited file.
- `offline_key_fact_in_passages_share`: the same key-fact rule applied to all the passages together: the
  ceiling any extractive answer from these passages can reach.
- `offline_answer_words_mean`: answer length without the label and Sources lines (a longer answer matches
  more words, so a gain must not come from length alone).
- `offline_answer_ms_p50` / `_p95`: `extractive_answer` alone (the model warmed up first).

Each figure is printed as `name: value`; --json prints them as one JSON object instead.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from knowledge.bench import evaluation
from knowledge.models import Document, KnowledgeBase
from knowledge.selectors import RetrievedChunk
from knowledge.selectors import retrieve as knowledge_retrieve
from portal.assistant.models import AssistantProfile
from portal.assistant.pipeline import RetrievedContext, build
from portal.routing import offline

KEY_FACT_WORD_SHARE = 0.6
KNOWLEDGE_BASE_PREFIX = "eval-offline: "
ERROR_NOT_KEPT = "No kept knowledge base {name!r}: run once with --keep first."
_CITATION = re.compile(r"\[([^\]#]+?)(?:#page=(\d+))?\]")
_WORD = re.compile(r"[\w$%.,'-]+", re.UNICODE)
_POINT_CITATION = re.compile(r"\[(\d+)\]")
_CENTS = re.compile(r"\.00$")  # "$2,000.00" is the same amount as "$2,000"
WARM_UP = [
    {"role": "user", "content": "[1] Source: Warm-up\nThis sentence only loads the local models before timing."},
    {"role": "user", "content": "What loads the models?"},
]
# the offline model's stopwords plus the filler a ground-truth sentence adds around its fact
JUDGE_STOPWORDS = offline.STOPWORDS | frozenset(
    [
        "also",
        "any",
        "been",
        "being",
        "each",
        "if",
        "into",
        "may",
        "more",
        "most",
        "must",
        "no",
        "not",
        "only",
        "other",
        "over",
        "such",
        "than",
        "them",
        "then",
        "these",
        "they",
        "those",
        "under",
        "up",
        "very",
        "were",
        "would",
        "could",
        "all",
        "some",
        "so",
        "per",
    ]
)


def default_folder() -> Path:
    return (Path(settings.BASE_DIR).parent / "shared" / "data" / "business_kb" / "contoso").resolve()


def _normal(token: str) -> str:
    token = token.lower().strip(".,'-")
    if token.endswith("'s"):
        token = token[:-2]
    if len(token) > 3 and token.endswith("s") and not token.endswith("ss"):
        token = token[:-1]
    return token


def judged_terms(text: str) -> tuple[set[str], set[str]]:
    """(content words, numbers) of a text, as the judging rule compares them."""
    words: set[str] = set()
    numbers: set[str] = set()
    for raw in _WORD.findall(text):
        if any(character.isdigit() for character in raw):
            digits = re.sub(r"\D", "", _CENTS.sub("", raw.rstrip(".,")))
            if digits:
                numbers.add(digits)
            continue
        for piece in re.split(r"[$%.,]+", raw):
            word = _normal(piece)
            if len(word) > 1 and word not in JUDGE_STOPWORDS:
                words.add(word)
    return words, numbers


def key_fact(truth: str) -> str:
    return _CITATION.sub("", truth).strip()


def contains_key_fact(truth: str, answer: str) -> tuple[bool, float]:
    """(whether the answer holds the truth's key fact by the rule above, share of content words found)."""
    wanted_words, wanted_numbers = judged_terms(key_fact(truth))
    found_words, found_numbers = judged_terms(answer)
    share = len(wanted_words & found_words) / len(wanted_words) if wanted_words else 0.0
    if wanted_numbers:
        return wanted_numbers <= found_numbers, share
    return share >= KEY_FACT_WORD_SHARE, share


def answer_body(answer: str) -> str:
    lines = answer.splitlines()[1:]
    return "\n".join(line for line in lines if not line.startswith("Sources: "))


class Command(BaseCommand):
    help = "Evaluate the offline model's answers on a question/answer set with cited files."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--qa", type=Path, default=None, help="folder of documents with ground_truth.jsonl")
        parser.add_argument("--limit-queries", type=int, default=0)
        parser.add_argument("--keep", action="store_true", help="keep the evaluation knowledge base afterwards")
        parser.add_argument("--reuse", action="store_true", help="answer from the base a --keep run left")
        parser.add_argument("--details", type=Path, help="write each question, truth, answer and verdict (JSONL)")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        folder: Path = (options["qa"] or default_folder()).resolve()
        try:
            qa_set = evaluation.qa_folder_read(folder, options["limit_queries"])
        except FileNotFoundError as error:
            raise CommandError(str(error)) from None
        name = f"{KNOWLEDGE_BASE_PREFIX}{folder.name}"
        figures: dict[str, Any] = {"dataset": folder.name, "questions": len(qa_set.questions)}
        knowledge_base = self._knowledge_base(name, qa_set, figures, options)
        try:
            figures.update(self._answers(knowledge_base, qa_set.questions, options))
        finally:
            if not options["keep"] and not options["reuse"]:
                evaluation.knowledge_base_drop(name)
        figures["note"] = "timings on a 2-core machine shared with other work"
        if options["json"]:
            self.stdout.write(json.dumps(figures, indent=2))
        else:
            for figure, value in figures.items():
                self.stdout.write(f"{figure}: {value}")

    def _knowledge_base(
        self, name: str, qa_set: evaluation.QaFolder, figures: dict[str, Any], options: dict[str, Any]
    ) -> KnowledgeBase:
        if options["reuse"]:
            kept = KnowledgeBase.objects.filter(name=name).first()
            if kept is None:
                raise CommandError(ERROR_NOT_KEPT.format(name=name))
            figures["knowledge_base"] = "reused"
            return kept
        knowledge_base = evaluation.knowledge_base_fresh(name, "Evaluation documents (eval_offline).")
        bar = tqdm(total=len(qa_set.files), desc="ingesting", unit="file", disable=options["json"])
        started = time.perf_counter()
        try:
            figures["chunks"] = evaluation.qa_folder_ingest(knowledge_base, qa_set.files, progress=bar.update)
        except ValueError as error:
            raise CommandError(str(error)) from None
        finally:
            bar.close()
        figures["ingest_seconds"] = round(time.perf_counter() - started, 1)
        return knowledge_base

    def _answers(
        self, knowledge_base: KnowledgeBase, questions: list[dict[str, str]], options: dict[str, Any]
    ) -> dict[str, Any]:
        # The pipeline retrieves for a signed-in user; a superuser reads the whole (evaluation) base, which is
        # what an assistant profile over this one base would see.
        reader = User(username="eval-offline", is_superuser=True)
        profile = AssistantProfile(name="eval-offline")
        passage_count = int(profile.passages)
        filenames = dict(Document.objects.filter(knowledge_base=knowledge_base).values_list("id", "original_filename"))
        offline.extractive_answer(WARM_UP)  # load the local models outside the timing
        hits = cited = first_cited = ceiling = 0
        details: list[dict[str, Any]] = []
        shares: list[float] = []
        lengths: list[int] = []
        timings: list[float] = []
        for item in tqdm(questions, desc="answering", unit="question", disable=options["json"]):
            chunks = knowledge_retrieve(
                user=reader, query=item["question"], knowledge_bases=[knowledge_base], k=passage_count,
                audit_event=False,
            )  # fmt: skip
            messages = build_messages(profile, chunks, item["question"])
            started = time.perf_counter()
            answer = offline.extractive_answer(messages)
            timings.append((time.perf_counter() - started) * 1000)
            body = answer_body(answer)
            hit, share = contains_key_fact(item["truth"], body)
            hits += hit
            shares.append(share)
            lengths.append(len(body.split()))
            ceiling += contains_key_fact(item["truth"], "\n".join(chunk.text for chunk in chunks))[0]
            wanted_files = {file.strip() for file, _ in _CITATION.findall(item["truth"])}
            numbers = {int(n) for n in _POINT_CITATION.findall(body)}
            cited_files = {filenames.get(chunks[n - 1].document_id) for n in numbers if 0 < n <= len(chunks)}
            cited += bool(wanted_files & cited_files)
            first = _POINT_CITATION.search(body)
            if first is not None and 0 < int(first.group(1)) <= len(chunks):
                first_cited += filenames.get(chunks[int(first.group(1)) - 1].document_id) in wanted_files
            details.append({**item, "answer": answer, "key_fact": hit, "content_word_share": round(share, 3)})
        if options["details"]:
            options["details"].write_text("".join(json.dumps(row) + "\n" for row in details), encoding="utf-8")
        total = len(questions) or 1
        return {
            "passages_per_question": passage_count,
            "offline_key_fact_share": round(hits / total, 3),
            "offline_content_word_recall_mean": round(sum(shares) / total, 3),
            "offline_source_cited_share": round(cited / total, 3),
            "offline_first_point_source_share": round(first_cited / total, 3),
            "offline_key_fact_in_passages_share": round(ceiling / total, 3),
            "offline_answer_words_mean": round(sum(lengths) / total, 1),
            "offline_answer_ms_p50": round(evaluation.percentile(timings, 50), 1),
            "offline_answer_ms_p95": round(evaluation.percentile(timings, 95), 1),
        }


def build_messages(profile: AssistantProfile, chunks: list[RetrievedChunk], question: str) -> list[dict[str, str]]:
    """The chat messages the offline model receives for these passages (no history, no customer)."""
    parts = build(profile=profile, history=[], context=RetrievedContext(chunks=tuple(chunks)), question=question)
    return [{"role": part.role, "content": part.text} for part in parts]
