"""`manage.py eval_egress`: do the hard canary values stay home? (portal.bench.canaries makes them.)

The customers go in through the real CSV import (and their interactions through the interaction import);
each prompt is asked through the real pipeline (`portal.assistant.pipeline.answer`: route, retrieve, build,
the egress gate, routing, litellm) against a recording provider on 127.0.0.1 that answers by echoing the
question it received, with its placeholders spelled the ways models spell them. Figures:

- `prompts_leaking`: prompts whose recorded request bodies hold at least one planted value in clear
  (case, accents, invisible characters and spacing ignored; phone and account numbers as digit runs);
- `values_leaked` by field and by style (`customer_context`: the record's own values, sent as customer parts
  of a conversation about that customer);
- `restored_exact`: answers shown exactly as the question was asked (every placeholder restored, whatever
  its spelling), by spelling too;
- `brackets_unbalanced`: questions whose brackets no longer pair up once masked (a bracket next to a value
  eaten with it);
- `masked_words_per_1000`: words of benign text (the Contoso passages) that the Staff policy would mask,
  per 1,000 words, with the hard customers in the dictionary;
- `egress_ms_p50` / `egress_ms_p95`: the gate stage of each question (the pipeline's own stage clock).

Everything it creates (users, a profile, a catalog model, customers, conversations) is deleted at the end;
audit events stay, as always. Run it on a database of its own:
    PORTAL_DB_NAME=portal_eval_egress python manage.py eval_egress
"""

from __future__ import annotations

import os
import re
import statistics
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib.auth.models import Group, User

from portal.bench.canaries import DIGITS, WORD, CanaryPrompt, CanarySet, Planted, generate
from portal.bench.provider import RecordingProvider, recording_provider

EVAL_PREFIX = "eval-egress"
PROFILE_NAME = "Egress evaluation profile (temporary)"
MODEL_NAME = "Egress evaluation endpoint"
KEY_VARIABLE = "PORTAL_EVAL_EGRESS_KEY"
ECHO = "Echo: "
# How models write a placeholder back: the spelling of `<PERSON_1>` in the echoed answer.
SPELLINGS: dict[str, Callable[[str, str], str]] = {
    "exact": lambda kind, number: f"<{kind}_{number}>",
    "lower": lambda kind, number: f"<{kind.lower()}_{number}>",
    "bare": lambda kind, number: f"{kind}_{number}",
    "square": lambda kind, number: f"[{kind}_{number}]",
    "escaped": lambda kind, number: f"{kind.replace('_', chr(92) + '_')}\\_{number}",
    "escaped_angle": lambda kind, number: f"<{kind.replace('_', chr(92) + '_')}\\_{number}>",
    "hyphen": lambda kind, number: f"{kind.replace('_', '-')}-{number}",
    "space": lambda kind, number: f"{kind.replace('_', ' ')} {number}",
}
PLACEHOLDER = re.compile(r"<([A-Z][A-Z_]*?)_(\d+)>")
DIGIT_RUN = re.compile(r"\d(?:[\d\s().+/-]*\d)?")


@dataclass
class PromptResult:
    prompt: CanaryPrompt
    spelling: str
    leaked: list[Planted] = field(default_factory=list)
    turns_answered: int = 0
    turns_exact: int = 0
    turns_blocked: int = 0
    turns_failed: int = 0
    brackets_unbalanced: bool = False
    egress_ms: list[float] = field(default_factory=list)


# ---- comparing values with what was sent -------------------------------------------------------------------
def normalised(text: str) -> str:
    """Case- and accent-folded, without format characters (zero-width, soft hyphen), one space per gap."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    kept = "".join(ch for ch in folded if not unicodedata.combining(ch) and unicodedata.category(ch) != "Cf")
    return " ".join(kept.casefold().split())


def digit_runs(text: str) -> list[str]:
    return ["".join(ch for ch in run if ch.isdigit()) for run in DIGIT_RUN.findall(text)]


def is_leaked(planted: Planted, sent: str, runs: list[str]) -> bool:
    if planted.kind == DIGITS:
        return any(planted.value in run for run in runs)
    value = normalised(planted.value)
    if planted.kind == WORD:
        return re.search(r"(?<!\w)" + re.escape(value) + r"(?!\w)", sent) is not None
    return value in sent


def _bracket_balance(text: str) -> tuple[int, int]:
    """Opening minus closing parentheses and square brackets: a masked "(201) 555-0147" keeps it, an eaten
    closing bracket does not."""
    return text.count("(") - text.count(")"), text.count("[") - text.count("]")


def _contents(bodies: list[dict[str, Any]]) -> list[str]:
    return [str(message.get("content", "")) for body in bodies for message in body.get("messages", [])]


# ---- the cast --------------------------------------------------------------------------------------------
@dataclass
class Actors:
    admin: User
    asker: User
    profile: Any
    staff: list[User]


def actors_ensure(canaries: CanarySet, provider_url: str) -> Actors:
    from guardian.shortcuts import assign_perm

    from governance import known_entities
    from portal.assistant.models import AssistantProfile
    from portal.routing.models import CatalogModel
    from portal.routing.selectors import task_tiers

    actors_delete()
    staff_role, admin_role = Group.objects.get(name="Staff"), Group.objects.get(name="Administrator")
    admin = User.objects.create(username=f"{EVAL_PREFIX}-admin", email="eval-admin@invalid")
    admin.groups.add(admin_role)
    staff = []
    for member in canaries.staff:
        user = User.objects.create(username=member.username, first_name=member.first, last_name=member.last,
                                   email=f"{member.username}@invalid")  # fmt: skip
        user.groups.add(staff_role)
        staff.append(user)
    profile = AssistantProfile.objects.create(name=PROFILE_NAME, task_type="routine", max_tokens=400)
    assign_perm("assistant.use_assistantprofile", staff_role, profile)
    CatalogModel.objects.create(
        display_name=MODEL_NAME, litellm_model="openai/eval-egress", api_base=provider_url, api_key_env=KEY_VARIABLE,
        tier=task_tiers()["routine"], timeout_seconds=60, order=0,
    )  # fmt: skip
    known_entities.invalidate()  # the staff are in the user directory now
    return Actors(admin=admin, asker=staff[0], profile=profile, staff=staff)


def actors_delete(customer_ids: list[int] | None = None) -> None:
    from governance import known_entities
    from portal.assistant.models import AssistantProfile, Conversation
    from portal.customers.models import Customer
    from portal.routing.models import CatalogModel

    Conversation.objects.filter(profile__name=PROFILE_NAME).delete()
    AssistantProfile.objects.filter(name=PROFILE_NAME).delete()
    CatalogModel.objects.filter(display_name=MODEL_NAME).delete()
    if customer_ids:
        Customer.objects.filter(pk__in=customer_ids).delete()
    User.objects.filter(username__startswith=EVAL_PREFIX).delete()
    User.objects.filter(username__startswith="eval-staff-").delete()
    known_entities.invalidate()


def customers_load(canaries: CanarySet, admin: User) -> tuple[list[int], dict[int, int], dict[str, Any]]:
    """Through the real imports: (created ids, customer index -> id, import figures)."""
    from governance import known_entities
    from portal.customers.csv_io import customers_import, interactions_import

    report = customers_import(actor=admin, data=canaries.customers_csv(), filename="hard-customers.csv")
    if report.file_error or report.problems:
        problems = report.file_error or "; ".join(f"line {p.line}: {p.reason}" for p in report.problems[:5])
        raise RuntimeError(f"the canary customers did not import: {problems}")
    ids = dict(enumerate(report.created_ids))
    interactions = interactions_import(actor=admin, data=canaries.interactions_csv(), filename="interactions.csv")
    known_entities.invalidate()  # also in this process, before the first question
    return (
        report.created_ids,
        ids,
        {
            "customers_imported": report.imported,
            "interactions_imported": interactions.imported,
            "import_rows_rejected": len(report.problems) + len(interactions.problems),
        },
    )


# ---- asking -----------------------------------------------------------------------------------------------
def _echo(spelling: str) -> Callable[[dict[str, Any]], str]:
    def reply(body: dict[str, Any]) -> str:
        question = str((body.get("messages") or [{}])[-1].get("content", ""))
        return ECHO + PLACEHOLDER.sub(lambda m: SPELLINGS[spelling](m.group(1), m.group(2)), question)

    return reply


def ask(prompt: CanaryPrompt, *, actors: Actors, customer_id: int, provider: RecordingProvider) -> PromptResult:
    from portal.assistant import pipeline, services
    from portal.assistant.models import MessageStatus

    spelling = list(SPELLINGS)[prompt.index % len(SPELLINGS)]
    result = PromptResult(prompt=prompt, spelling=spelling)
    provider.reply = _echo(spelling)
    provider.take()
    conversation = services.conversation_create(
        actor=actors.asker, profile=actors.profile, customer_id=customer_id if prompt.about_customer else None
    )
    bodies: list[dict[str, Any]] = []
    for question in prompt.turns:

        async def collect(question: str = question) -> Any:
            from portal.routing.router import release_loop_clients

            stored = None
            async for event in pipeline.answer(user=actors.asker, conversation=conversation, question=question):
                if isinstance(event, pipeline.AnswerStored):
                    stored = event
            await release_loop_clients()  # this loop ends with the question: close litellm's clients of it
            return stored

        stored = async_to_sync(collect)()
        received = provider.take()
        bodies += received
        if stored is not None and "stage_egress_ms" in stored.timings:
            result.egress_ms.append(float(stored.timings["stage_egress_ms"]))
        message = stored.message if stored is not None else None
        if message is None or message.status == MessageStatus.BLOCKED or not received:
            result.turns_blocked += 1
            continue
        if message.status != MessageStatus.COMPLETE:
            result.turns_failed += 1
            continue
        result.turns_answered += 1
        result.turns_exact += int(message.content == ECHO + question)
        sent_question = str(received[-1]["messages"][-1].get("content", ""))
        if _bracket_balance(sent_question) != _bracket_balance(question):  # "(<PHONE_1> today": one eaten
            result.brackets_unbalanced = True
    contents = _contents(bodies)
    sent = normalised("\n".join(contents))
    runs = [run for text in contents for run in digit_runs(text)]
    result.leaked = [planted for planted in prompt.planted if is_leaked(planted, sent, runs)]
    return result


# ---- benign text -------------------------------------------------------------------------------------------
def contoso_passages(folder: Path) -> list[str]:
    """Every page of the Contoso PDFs and every section of its markdown overview."""
    import pypdfium2

    passages = []
    for path in sorted(folder.iterdir()):
        if path.suffix == ".md":
            passages += [part for part in path.read_text(encoding="utf-8").split("\n## ") if part.strip()]
        elif path.suffix == ".pdf":
            document = pypdfium2.PdfDocument(str(path))
            try:
                passages += [page.get_textpage().get_text_range() for page in document]
            finally:
                document.close()
    return [" ".join(text.split()) for text in passages if text.strip()]


def masked_words(passages: list[str]) -> dict[str, Any]:
    """Words the Staff policy would mask (pseudonymize, abstract, redact) in benign passages; a passage with a
    blocked value would be withheld whole, and is counted apart."""
    from governance import classes as dc
    from governance.detection import detect
    from governance.policy import effective_policy, normalise_document
    from governance.selectors import policy_current

    policy = effective_policy(normalise_document(policy_current().document), ["Staff"])
    words = 0
    masked: Counter[str] = Counter()
    withheld = 0
    examples: list[str] = []
    for text in passages:
        words += len(text.split())
        findings = detect(text)
        if any(policy.classes.get(f.data_class, dc.BLOCK) == dc.BLOCK for f in findings):
            withheld += 1
        for finding in findings:
            if policy.classes.get(finding.data_class, dc.BLOCK) in (dc.PSEUDONYMIZE, dc.ABSTRACT, dc.REDACT):
                value = text[finding.start : finding.end]
                masked[finding.data_class] += len(value.split())
                if len(examples) < 10:
                    examples.append(f"{finding.data_class}: {value[:60]}")
    return {
        "masked_words_per_1000": round(1000 * sum(masked.values()) / max(1, words), 2),
        "masked_words_by_class": dict(sorted(masked.items())),
        "benign_passages": len(passages),
        "benign_words": words,
        "benign_passages_withheld": withheld,
        "masked_examples": examples,
    }


# ---- the run -------------------------------------------------------------------------------------------------
def percentile(samples: list[float], share: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return round(ordered[max(0, min(len(ordered) - 1, round(share * len(ordered)) - 1))], 2)


def figures_of(canaries: CanarySet, results: list[PromptResult]) -> dict[str, Any]:
    planted_by: dict[str, Counter[str]] = {"field": Counter(), "style": Counter()}
    leaked_by: dict[str, Counter[str]] = {"field": Counter(), "style": Counter()}
    by_spelling: dict[str, list[int]] = {name: [0, 0] for name in SPELLINGS}
    examples: list[str] = []
    for result in results:
        for planted in result.prompt.planted:
            planted_by["field"][planted.field] += 1
            planted_by["style"][planted.style] += 1
        for planted in result.leaked:
            leaked_by["field"][planted.field] += 1
            leaked_by["style"][planted.style] += 1
            if len(examples) < 12:
                examples.append(f"prompt {result.prompt.index} {planted.style}/{planted.field}: {planted.value}")
        by_spelling[result.spelling][0] += result.turns_exact
        by_spelling[result.spelling][1] += result.turns_answered
    answered = sum(r.turns_answered for r in results)
    egress = [ms for r in results for ms in r.egress_ms]
    return {
        "seed": canaries.seed,
        "customers": len(canaries.customers),
        "prompts": len(results),
        "turns": sum(len(r.prompt.turns) for r in results),
        "turns_answered": answered,
        "turns_blocked": sum(r.turns_blocked for r in results),
        "turns_failed": sum(r.turns_failed for r in results),
        "prompts_leaking": sum(1 for r in results if r.leaked),
        "values_planted": sum(len(r.prompt.planted) for r in results),
        "values_leaked": sum(len(r.leaked) for r in results),
        "values_leaked_by_field": {
            name: {"leaked": leaked_by["field"][name], "planted": count}
            for name, count in sorted(planted_by["field"].items())
        },
        "values_leaked_by_style": {
            name: {"leaked": leaked_by["style"][name], "planted": count}
            for name, count in sorted(planted_by["style"].items())
        },
        "restored_exact": round(sum(r.turns_exact for r in results) / answered, 4) if answered else None,
        "restored_exact_by_spelling": {
            name: round(exact / total, 4) if total else None for name, (exact, total) in by_spelling.items()
        },
        "brackets_unbalanced": sum(1 for r in results if r.brackets_unbalanced),
        "egress_ms_p50": round(statistics.median(egress), 2) if egress else None,
        "egress_ms_p95": percentile(egress, 0.95),
        "leak_examples": examples,
    }


def run(
    *,
    seed: int,
    customers: int,
    prompts_per_customer: int,
    contoso: Path | None,
    styles: list[str] | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    os.environ.setdefault(KEY_VARIABLE, "eval-egress-key")
    canaries = generate(seed=seed, customers=customers, prompts_per_customer=prompts_per_customer)
    prompts = [p for p in canaries.prompts if styles is None or p.style in styles]
    created: list[int] = []
    with recording_provider() as provider:
        actors = actors_ensure(canaries, provider.url)
        try:
            created, ids, figures = customers_load(canaries, actors.admin)
            log(f"{figures['customers_imported']} customers imported; asking {len(prompts)} prompts…")
            results = []
            for number, prompt in enumerate(prompts, start=1):
                results.append(ask(prompt, actors=actors, customer_id=ids[prompt.customer], provider=provider))
                if number % 50 == 0:
                    log(f"  {number}/{len(prompts)}")
            figures = {**figures_of(canaries, results), **figures}
            if contoso is None or not contoso.is_dir():
                figures["masked_words_per_1000"] = f"skipped: Contoso passages not found at {contoso}"
            else:
                log("benign text…")
                figures.update(masked_words(contoso_passages(contoso)))
        finally:
            actors_delete(created)
    return figures


def figure_lines(figures: dict[str, Any]) -> list[str]:
    """One `name: value` line per figure; the per-field and per-style counts as `values_leaked.field.X`."""
    lines = []
    for name, value in figures.items():
        if name in ("values_leaked_by_field", "values_leaked_by_style"):
            kind = name.rsplit("_", 1)[-1]
            lines += [
                f"values_leaked.{kind}.{key}: {row['leaked']}  (of {row['planted']})" for key, row in value.items()
            ]
        elif name == "restored_exact_by_spelling":
            lines += [f"restored_exact.spelling.{key}: {share}" for key, share in value.items()]
        elif name == "masked_words_by_class":
            lines += [f"masked_words.class.{key}: {count}" for key, count in value.items()]
        elif isinstance(value, list):
            lines += [f"{name}: {item}" for item in value]
        elif name == "prompts_leaking":
            lines.append(f"{name}: {value}  (target 0)")
        elif name == "restored_exact":
            lines.append(f"{name}: {value}  (target 1.0)")
        elif name == "masked_words_per_1000" and not isinstance(value, str):
            lines.append(f"{name}: {value}  (target <= 1)")
        else:
            lines.append(f"{name}: {value}")
    return lines
