"""What each step kind does. Every step acts as the run's owner, through the other apps' selectors and services:
knowledge search with the owner's read permissions, model calls through the gated door (the owner's role decides
what leaves, the owner's budget pays), customer writes with the owner's role permissions.

An executor returns a StepResult or raises StepFailed (the step failed, with a reason meant for people) or
ItemMissing (the customer or document of this for-each item is gone: that item fails, the others go on).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.utils import timezone

from portal.workflows.definition import (
    AskStep,
    ClassifyStep,
    InteractionStep,
    MemoryStep,
    NotifyStep,
    SearchStep,
)
from portal.workflows.program import render

TEXT_CHARS = 1500
DOCUMENT_CHUNKS = (
    20  # passages of a document a classify step reads  # characters of each passage kept in a search step's output
)

ERROR_NOT_SENT = "Nothing was sent to a model: {why}"
ERROR_MODEL_FAILED = "The model call failed: {why}"
ERROR_BASE_NOT_READABLE = "The run's owner may not read the knowledge base {name!r} (or it does not exist)."
ERROR_PROFILE = "The run's owner may not use the assistant profile {name!r} (or it does not exist)."
ERROR_CUSTOMER_GONE = "Customer {customer_id} no longer exists or is not visible to the run's owner."
ERROR_NOT_AN_ID = "{what} must be a number, got {value!r}."


class StepFailed(Exception):
    pass


class ItemMissing(StepFailed):
    pass


@dataclass
class StepResult:
    output: dict[str, Any]
    input: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    cost: Decimal = Decimal(0)
    model: str = ""
    model_ms: float | None = None


@dataclass(frozen=True)
class StepContext:
    owner: User
    run_id: int
    step_run_id: int
    key: str
    variables: dict[str, Any]


def _as_id(value: str, what: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError as error:
        raise StepFailed(ERROR_NOT_AN_ID.format(what=what, value=value[:40])) from error


def _customer(context: StepContext, template: str) -> Any:
    from portal.customers.selectors import customers_visible_to

    customer_id = _as_id(render(template, context.variables), "customer")
    customer = customers_visible_to(user=context.owner).filter(pk=customer_id).first()
    if customer is None:
        raise ItemMissing(ERROR_CUSTOMER_GONE.format(customer_id=customer_id))
    return customer


def run_search(step: SearchStep, context: StepContext) -> StepResult:
    from knowledge.selectors import knowledge_bases_for_user, retrieve

    bases = knowledge_bases_for_user(user=context.owner)
    if step.knowledge_bases:
        bases = bases.filter(name__in=step.knowledge_bases)
        found = set(bases.values_list("name", flat=True))
        for name in step.knowledge_bases:
            if name not in found:
                raise StepFailed(ERROR_BASE_NOT_READABLE.format(name=name))
    query = render(step.query, context.variables)
    chunks = retrieve(user=context.owner, query=query, knowledge_bases=list(bases), k=step.k)
    passages = [
        {
            "chunk_id": chunk.chunk_id,
            "document_id": chunk.document_id,
            "title": chunk.document_title,
            "knowledge_base_id": chunk.knowledge_base_id,
            "classification": chunk.classification,
            "text": chunk.text[:TEXT_CHARS],
        }
        for chunk in chunks
    ]
    text = "\n\n".join(f"{item['title']}: {item['text']}" for item in passages)
    return StepResult(
        output={"count": len(passages), "chunks": passages, "text": text},
        input={"query": query, "knowledge_bases": step.knowledge_bases or ["(all readable)"], "k": step.k},
    )


def ask_parts(step: AskStep, context: StepContext) -> tuple[list[Any], str, str]:
    """The prompt parts exactly as they go to the gate, the question, and the task type."""
    from governance.gate import PromptPart
    from portal.assistant.selectors import profiles_for_user
    from portal.customers.selectors import customer_context

    parts: list[PromptPart] = []
    task_type = step.task_type
    if step.profile:
        profile = profiles_for_user(user=context.owner).filter(name=step.profile).first()
        if profile is None:
            raise StepFailed(ERROR_PROFILE.format(name=step.profile))
        if profile.instructions:
            parts.append(PromptPart(kind="instructions", text=profile.instructions, role="system"))
        if task_type == "auto" and profile.task_type:
            task_type = profile.task_type
    steps = context.variables.get("steps", {})
    number = 0
    for search_id in step.context:
        for passage in (steps.get(search_id) or {}).get("chunks", []):
            number += 1
            parts.append(
                PromptPart(
                    kind="chunk",
                    text=f"[{number}] Source: {passage['title']}\n{passage['text']}",
                    source={
                        "citation": number,
                        "chunk_id": passage["chunk_id"],
                        "document_id": passage["document_id"],
                        "knowledge_base_id": passage["knowledge_base_id"],
                        "classification": passage["classification"],
                    },
                )
            )
    if step.customer:
        customer = _customer(context, step.customer)
        try:
            record = customer_context(user=context.owner, customer_id=customer.pk)
        except (Http404, PermissionDenied) as error:
            raise ItemMissing(ERROR_CUSTOMER_GONE.format(customer_id=customer.pk)) from error
        for name, value in record.fields.items():
            parts.append(
                PromptPart(
                    kind="customer",
                    text=f"Customer {name}: {value}",
                    source={"customer_id": record.customer_id, "field": name},
                )
            )
    question = render(step.prompt, context.variables)
    parts.append(PromptPart(kind="question", text=question, source={}))
    return parts, question, task_type


def run_ask(step: AskStep, context: StepContext) -> StepResult:
    from portal.routing.services import model_complete_gated

    parts, question, task_type = ask_parts(step, context)
    completion = model_complete_gated(
        user=context.owner,
        parts=parts,
        task_type=task_type,
        question=question,
        conversation_key=f"workflow-run-{context.run_id}-{context.key}",
        subject=("workflows.steprun", context.step_run_id),
        max_tokens=step.max_tokens,
    )
    shown_input = {
        "task_type": task_type,
        "parts": [{"kind": part.kind, "role": part.role, "chars": len(part.text)} for part in parts],
        "question": question,
    }
    manifest = completion.gated.manifest if completion.gated is not None else {}
    if completion.not_sent:
        raise StepFailed(ERROR_NOT_SENT.format(why=completion.not_sent))
    outcome = completion.outcome
    assert outcome is not None
    if not completion.answered:
        raise StepFailed(ERROR_MODEL_FAILED.format(why=outcome.error))
    return StepResult(
        output={"text": completion.text, "model": outcome.model_name, "tokens_out": outcome.tokens_out},
        input=shown_input,
        manifest=manifest,
        cost=outcome.cost,
        model=outcome.model_name,
        model_ms=outcome.total_ms,
    )


def run_classify(step: ClassifyStep, context: StepContext) -> StepResult:
    from portal.ml.predict import active_model, text_scores

    text = _document_text(context, step.document) if step.document else render(step.text, context.variables)
    loaded = active_model(step.model)
    if loaded is not None:
        label, probability, _ = text_scores(loaded, [text], None)[0]
        source = f"{step.model} model v{loaded.version.version}"
        output = {"label": label, "probability": round(probability, 4), "source": source}
    else:
        lowered = text.lower()
        hit = next((word for word in step.keywords if word.lower() in lowered), None)
        label = step.keyword_label if hit else step.default_label
        output = {"label": label, "probability": None, "source": "keyword rule (no active local model)"}
    return StepResult(output=output, input={"chars": len(text), "model": step.model})


def _document_text(context: StepContext, template: str) -> str:
    from knowledge.selectors import document_chunks, documents_for_user

    document_id = _as_id(render(template, context.variables), "document")
    document = documents_for_user(user=context.owner).filter(pk=document_id).first()
    if document is None:
        raise ItemMissing(f"Document {document_id} no longer exists or is not readable by the run's owner.")
    return "\n\n".join(chunk.text for chunk in document_chunks(document=document)[:DOCUMENT_CHUNKS])


def run_memory(step: MemoryStep, context: StepContext) -> StepResult:
    from portal.memory.services import MemoryDraft, memory_create

    text = render(step.text, context.variables)
    customer = _customer(context, step.customer) if step.customer else None
    draft = MemoryDraft(
        text=text, kind=step.memory_kind, scope="customer" if customer else "organisation", scope_customer=customer
    )
    try:
        # actor None: a proposal waiting for review, never approved on the owner's authority
        memory = memory_create(actor=None, draft=draft)
    except ValidationError as error:
        raise StepFailed("; ".join(error.messages)) from error
    return StepResult(
        output={"memory_id": memory.pk, "status": memory.status},
        input={"text": text, "customer_id": customer.pk if customer else None, "memory_kind": step.memory_kind},
    )


def run_interaction(step: InteractionStep, context: StepContext) -> StepResult:
    from portal.customers.services import interaction_create

    customer = _customer(context, step.customer)
    summary = render(step.summary, context.variables)
    full_text = render(step.full_text, context.variables)
    try:
        interaction = interaction_create(
            actor=context.owner,
            customer=customer,
            channel=step.channel,
            occurred_at=timezone.now(),
            summary=summary[:2000],
            full_text=full_text,
        )
    except (PermissionDenied, ValidationError) as error:
        raise StepFailed(str(error)) from error
    return StepResult(
        output={"interaction_id": interaction.pk, "customer_id": customer.pk},
        input={"customer_id": customer.pk, "summary": summary, "full_text": full_text, "channel": step.channel},
    )


def recipients(*, role: str = "", user: str = "", owner: User | None = None) -> list[User]:
    if user:
        return list(User.objects.filter(username=user, is_active=True))
    if role:
        return list(User.objects.filter(groups__name=role, is_active=True).order_by("pk"))
    return [owner] if owner is not None else []


def run_notify(step: NotifyStep, context: StepContext) -> StepResult:
    from django.urls import reverse

    from portal.workflows.models import Notification

    message = render(step.message, context.variables)
    people = recipients(role=step.to.role, user=step.to.user, owner=context.owner if step.to.owner else None)
    url = reverse("workflows:run_detail", args=[context.run_id])
    for person in people:
        Notification.objects.get_or_create(
            user=person, run_id=context.run_id, step_key=context.key, defaults={"text": message[:2000], "url": url}
        )
    return StepResult(output={"notified": len(people)}, input={"message": message, "recipients": len(people)})


EXECUTORS: dict[str, Callable[[Any, StepContext], StepResult]] = {
    "search": run_search,
    "ask": run_ask,
    "classify": run_classify,
    "memory": run_memory,
    "interaction": run_interaction,
    "notify": run_notify,
}
# Steps whose effect is written in the same transaction that marks them done: a crash before the commit leaves
# nothing behind, so running them again after a crash never does them twice. A model call cannot be undone:
# it runs outside, and one interrupted by a crash is asked again (its usage is recorded both times).
OUTSIDE_TRANSACTION = frozenset({"ask"})


def preview(step: Any, context: StepContext) -> dict[str, Any]:
    """What `step` would do and send with the variables as they are now (shown to approvers)."""
    try:
        if isinstance(step, AskStep):
            parts, question, task_type = ask_parts(step, context)
            return {
                "kind": "ask",
                "task_type": task_type,
                "sends": [{"kind": part.kind, "text": part.text} for part in parts],
                "note": "The egress gate applies the owner's role policy to these parts when they are sent.",
            }
        if isinstance(step, MemoryStep):
            return {
                "kind": "memory",
                "text": render(step.text, context.variables),
                "customer": step.customer and render(step.customer, context.variables),
            }
        if isinstance(step, InteractionStep):
            return {
                "kind": "interaction",
                "customer_id": render(step.customer, context.variables),
                "summary": render(step.summary, context.variables),
                "full_text": render(step.full_text, context.variables),
            }
        if isinstance(step, NotifyStep):
            return {"kind": "notify", "message": render(step.message, context.variables)}
        if isinstance(step, SearchStep):
            return {"kind": "search", "query": render(step.query, context.variables)}
    except StepFailed as error:
        return {"kind": step.kind, "error": str(error)}
    except Exception as error:  # noqa: BLE001 - a preview that cannot be made says so; the approval still waits
        return {"kind": getattr(step, "kind", ""), "error": f"cannot be shown yet: {error}"}
    return {"kind": getattr(step, "kind", "")} if step is not None else {}
