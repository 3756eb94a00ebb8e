"""The workflow definition language: a pydantic model of the JSON (and YAML) document, its checks, and errors
that name the step and the field.

A definition is a name, a description, typed inputs, a tree of steps (condition and for-each hold steps of their
own) and triggers. Text fields of steps are templates over the run's variables: `{{ inputs.customer }}`,
`{{ steps.summary.text }}`, `{{ item.name }}` inside a for-each. Nothing in a definition is code: a template only
substitutes values, and every step kind is one of the kinds below.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

IDENTIFIER = r"^[a-z][a-z0-9_]{0,39}$"
TEMPLATE_REFERENCE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*\}\}")
INPUT_TYPES = ("text", "number", "date", "customer", "document", "knowledge_base")
EVENTS = ("document_ingested", "customer_created", "interaction_added")
EVENT_VARIABLES = {
    "document_ingested": ("document_id", "knowledge_base_id"),
    "customer_created": ("customer_id",),
    "interaction_added": ("interaction_id", "customer_id"),
}
MAX_STEPS = 200

ERROR_DUPLICATE_STEP = "Another step already has the id {step_id!r}; step ids are unique in a workflow."
ERROR_UNKNOWN_VARIABLE = (
    "{reference!r} is not a variable here: use inputs.<name>, an earlier step's steps.<id>, {loops}."
)
ERROR_TOO_MANY_STEPS = f"A workflow has at most {MAX_STEPS} steps."
ERROR_DUPLICATE_INPUT = "Two inputs are called {name!r}."
ERROR_EVENT_VARIABLE = "{reference!r} is not a variable of the {event} event (it has: {names})."


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Input(_Strict):
    name: Annotated[str, Field(pattern=IDENTIFIER)]
    type: Literal["text", "number", "date", "customer", "document", "knowledge_base"] = "text"
    label: str = ""
    required: bool = True
    default: str | int | float | None = None


class _Step(_Strict):
    id: Annotated[str, Field(pattern=IDENTIFIER)]
    name: str = ""
    retries: Annotated[int, Field(ge=0, le=5)] = 0
    timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 300
    # stop: the run fails; continue: the next step runs; skip_item: inside a for-each, the next item
    on_failure: Literal["stop", "continue", "skip_item"] = "stop"


class SearchStep(_Step):
    kind: Literal["search"]
    query: Annotated[str, Field(min_length=1, max_length=1000)]
    knowledge_bases: list[str] = Field(default_factory=list)  # names; empty: every base the run's owner reads
    k: Annotated[int, Field(ge=1, le=20)] = 5


class AskStep(_Step):
    kind: Literal["ask"]
    prompt: Annotated[str, Field(min_length=1, max_length=8000)]
    profile: str = ""  # an assistant profile's name (its instructions and task type); empty: none
    context: list[str] = Field(default_factory=list)  # ids of earlier search steps whose passages go along
    customer: str = ""  # template giving a customer id whose record goes along (as customer data)
    task_type: str = "auto"
    max_tokens: Annotated[int, Field(ge=16, le=4000)] = 600


class ClassifyStep(_Step):
    kind: Literal["classify"]
    text: str = ""
    document: str = ""  # template giving a document id: its passages are the text (read as the run's owner)
    model: Literal["sensitivity"] = "sensitivity"

    @field_validator("document")
    @classmethod
    def _text_or_document(cls, value: str, info: Any) -> str:
        if bool(value) == bool(info.data.get("text")):
            raise ValueError("give exactly one of text or document")
        return value

    # The rule used when no local model is active: any keyword present gives `keyword_label`.
    keywords: list[str] = Field(default_factory=list)
    keyword_label: str = "confidential"
    default_label: str = "internal"


class Comparison(_Strict):
    var: Annotated[str, Field(min_length=1)]
    op: Literal["equals", "not_equals", "contains", "greater_than", "less_than", "is_empty", "not_empty"] = "equals"
    value: str | int | float | bool | None = None


class ConditionStep(_Step):
    kind: Literal["condition"]
    if_: Comparison = Field(alias="if")
    then: list[Step] = Field(default_factory=list)
    else_: list[Step] = Field(default_factory=list, alias="else")


class CustomerFilter(_Strict):
    tier: str = ""
    search: str = ""
    interacted_within_days: Annotated[int, Field(ge=1, le=3650)] | None = None


class DocumentFilter(_Strict):
    knowledge_base: Annotated[str, Field(min_length=1)]


class ForEachSource(_Strict):
    customers: CustomerFilter | None = None
    documents: DocumentFilter | None = None

    def kind(self) -> str:
        return "customers" if self.customers is not None else "documents"


class ForEachStep(_Step):
    kind: Literal["for_each"]
    over: ForEachSource
    as_: Annotated[str, Field(pattern=IDENTIFIER)] = Field(default="item", alias="as")
    steps: list[Step] = Field(min_length=1)
    limit: Annotated[int, Field(ge=1, le=10_000)] = 1000

    @field_validator("over")
    @classmethod
    def _one_source(cls, value: ForEachSource) -> ForEachSource:
        if (value.customers is None) == (value.documents is None):
            raise ValueError("give exactly one of customers or documents")
        return value


class Approver(_Strict):
    role: str = ""
    user: str = ""


class ApprovalStep(_Step):
    kind: Literal["approval"]
    approver: Approver
    message: str = ""
    deadline_hours: Annotated[float, Field(gt=0, le=24 * 90)] = 48
    on_expiry: Literal["reject", "approve", "fail"] = "reject"
    on_reject: Literal["stop", "continue", "skip_item"] = "stop"

    @field_validator("approver")
    @classmethod
    def _one_approver(cls, value: Approver) -> Approver:
        if bool(value.role) == bool(value.user):
            raise ValueError("give exactly one of role or user")
        return value


class MemoryStep(_Step):
    kind: Literal["memory"]
    text: Annotated[str, Field(min_length=1)]
    memory_kind: Literal["fact", "preference", "procedure", "decision"] = "fact"
    customer: str = ""  # template giving a customer id: the memory is about that customer


class InteractionStep(_Step):
    kind: Literal["interaction"]
    customer: Annotated[str, Field(min_length=1)]
    summary: Annotated[str, Field(min_length=1, max_length=2000)]
    full_text: str = ""
    channel: Literal["email", "phone", "meeting", "chat", "letter", "other"] = "other"


class Recipient(_Strict):
    role: str = ""
    user: str = ""
    owner: bool = False


class NotifyStep(_Step):
    kind: Literal["notify"]
    to: Recipient = Field(default_factory=lambda: Recipient(owner=True))
    message: Annotated[str, Field(min_length=1, max_length=2000)]


Step = Annotated[
    SearchStep
    | AskStep
    | ClassifyStep
    | ConditionStep
    | ForEachStep
    | ApprovalStep
    | MemoryStep
    | InteractionStep
    | NotifyStep,
    Field(discriminator="kind"),
]


class ManualTrigger(_Strict):
    kind: Literal["manual"]


class ScheduleTrigger(_Strict):
    kind: Literal["schedule"]
    cron: Annotated[str, Field(min_length=9)]
    timezone: str = "UTC"
    run_as: Annotated[str, Field(min_length=1)]
    inputs: dict[str, str | int | float] = Field(default_factory=dict)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from portal.workflows.schedule import parse_cron

        parse_cron(value)  # raises ValueError with what is wrong
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r}") from error
        return value


class EventTrigger(_Strict):
    kind: Literal["event"]
    event: Literal["document_ingested", "customer_created", "interaction_added"]
    run_as: Annotated[str, Field(min_length=1)]
    inputs: dict[str, str] = Field(default_factory=dict)  # input name -> template over `event.<variable>`


Trigger = Annotated[ManualTrigger | ScheduleTrigger | EventTrigger, Field(discriminator="kind")]


def _manual_only() -> list[ManualTrigger | ScheduleTrigger | EventTrigger]:
    return [ManualTrigger(kind="manual")]


class Definition(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    description: str = ""
    inputs: list[Input] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)
    triggers: list[Trigger] = Field(default_factory=_manual_only)


ConditionStep.model_rebuild()
ForEachStep.model_rebuild()
Definition.model_rebuild()

AnyStep = (
    SearchStep
    | AskStep
    | ClassifyStep
    | ConditionStep
    | ForEachStep
    | ApprovalStep
    | MemoryStep
    | InteractionStep
    | NotifyStep
)


# ---- errors ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DefinitionError:
    """One problem: where (a path into the document, the step id when inside a step) and what."""

    path: tuple[str | int, ...]
    step: str  # id of the innermost step holding the problem ("" outside steps)
    field: str  # the field's dotted name within that step (or the document)
    message: str
    line: int | None = None  # 1-based line in the YAML text, when it came from YAML

    def __str__(self) -> str:
        where = f"step {self.step!r}, field {self.field!r}" if self.step else f"field {self.field!r}"
        line = f"line {self.line}: " if self.line else ""
        return f"{line}{where}: {self.message}"


class DefinitionInvalid(Exception):
    def __init__(self, errors: list[DefinitionError]) -> None:
        super().__init__("; ".join(str(error) for error in errors))
        self.errors = errors


def _locate(document: Any, location: tuple[str | int, ...]) -> tuple[tuple[str | int, ...], str, str]:
    """Turn pydantic's location (which names union tags) into a path of the document, the innermost step's
    id and the field name relative to it."""
    path: list[str | int] = []
    node = document
    step_id, step_depth = "", 0
    for part in location:
        if isinstance(node, dict) and part not in node and isinstance(part, str) and node.get("kind") == part:
            continue  # the discriminator's tag
        if isinstance(node, dict) and part not in node and part in ("if_", "else_", "as_"):
            part = part.rstrip("_")
        path.append(part)
        if isinstance(node, dict):
            node = node.get(part) if isinstance(part, str) else None
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
        if isinstance(node, dict) and "kind" in node and len(path) >= 2 and path[-2] in ("steps", "then", "else"):
            step_id, step_depth = str(node.get("id") or f"#{part}"), len(path)
    field = ".".join(str(part) for part in path[step_depth:]) if step_id else ".".join(str(p) for p in path)
    return tuple(path), step_id, field or "(the step)"


def _from_pydantic(document: Any, error: ValidationError) -> list[DefinitionError]:
    errors = []
    for item in error.errors(include_url=False):
        location = tuple(item["loc"])
        if item["type"] in ("union_tag_invalid", "union_tag_not_found"):
            location = (*location, "kind")  # the problem is the kind itself, on its own line
        path, step, field = _locate(document, location)
        message = str(item["msg"]).removeprefix("Value error, ")
        errors.append(DefinitionError(path=path, step=step, field=field, message=message))
    return errors


# ---- walking ---------------------------------------------------------------------------------------
def children(step: AnyStep) -> Iterator[tuple[str, list[Any]]]:
    if isinstance(step, ConditionStep):
        yield "then", step.then
        yield "else", step.else_
    elif isinstance(step, ForEachStep):
        yield "steps", step.steps


def walk(
    steps: list[Any], path: tuple[str | int, ...] = ("steps",), loops: tuple[str, ...] = ()
) -> Iterator[tuple[AnyStep, tuple[str | int, ...], tuple[str, ...]]]:
    """Every step in document order with its path and the loop variables in force."""
    for index, step in enumerate(steps):
        here = (*path, index)
        yield step, here, loops
        inner_loops = (*loops, step.as_) if isinstance(step, ForEachStep) else loops
        for name, block in children(step):
            yield from walk(block, (*here, name), inner_loops)


TEMPLATE_FIELDS: dict[str, tuple[str, ...]] = {
    "search": ("query",),
    "ask": ("prompt", "customer"),
    "classify": ("text", "document"),
    "memory": ("text", "customer"),
    "interaction": ("customer", "summary", "full_text"),
    "notify": ("message",),
    "approval": ("message",),
}


def references(text: str) -> list[str]:
    return TEMPLATE_REFERENCE.findall(text or "")


def _check_semantics(definition: Definition) -> list[DefinitionError]:
    errors: list[DefinitionError] = []
    input_names = [item.name for item in definition.inputs]
    for name in {name for name in input_names if input_names.count(name) > 1}:
        errors.append(DefinitionError(("inputs",), "", "inputs", ERROR_DUPLICATE_INPUT.format(name=name)))
    seen: set[str] = set()
    count = 0
    for step, path, loops in walk(definition.steps):
        count += 1
        if step.id in seen:
            errors.append(DefinitionError((*path, "id"), step.id, "id", ERROR_DUPLICATE_STEP.format(step_id=step.id)))
        known_steps = set(seen)
        seen.add(step.id)
        fields: dict[str, str] = {name: getattr(step, name) for name in TEMPLATE_FIELDS.get(step.kind, ())}
        if isinstance(step, ConditionStep):
            fields["if.var"] = "{{ " + step.if_.var + " }}"
        for field_name, text in fields.items():
            for reference in references(text):
                if not _reference_ok(reference, set(input_names), known_steps, loops):
                    loop_hint = ", ".join(f"{name}.<field>" for name in loops) or "no loop variable (not in a for-each)"
                    message = ERROR_UNKNOWN_VARIABLE.format(reference=reference, loops=loop_hint)
                    errors.append(DefinitionError((*path, field_name), step.id, field_name, message))
        if isinstance(step, AskStep):
            for context_id in step.context:
                if context_id not in known_steps:
                    message = f"{context_id!r} is not an earlier search step."
                    errors.append(DefinitionError((*path, "context"), step.id, "context", message))
    if count > MAX_STEPS:
        errors.append(DefinitionError(("steps",), "", "steps", ERROR_TOO_MANY_STEPS))
    for index, trigger in enumerate(definition.triggers):
        if isinstance(trigger, EventTrigger):
            allowed = EVENT_VARIABLES[trigger.event]
            for name, text in trigger.inputs.items():
                for reference in references(text):
                    parts = reference.split(".")
                    if parts[0] != "event" or len(parts) != 2 or parts[1] not in allowed:
                        message = ERROR_EVENT_VARIABLE.format(
                            reference=reference, event=trigger.event, names=", ".join(f"event.{n}" for n in allowed)
                        )
                        errors.append(
                            DefinitionError(("triggers", index, "inputs", name), "", f"triggers.{index}", message)
                        )
        if isinstance(trigger, ScheduleTrigger | EventTrigger):
            for name in trigger.inputs:
                if name not in input_names:
                    message = f"{name!r} is not an input of this workflow."
                    errors.append(
                        DefinitionError(("triggers", index, "inputs", name), "", f"triggers.{index}", message)
                    )
    return errors


def _reference_ok(reference: str, inputs: set[str], steps: set[str], loops: tuple[str, ...]) -> bool:
    parts = reference.split(".")
    if parts[0] == "inputs":
        return len(parts) == 2 and parts[1] in inputs
    if parts[0] == "steps":
        return len(parts) >= 2 and parts[1] in steps
    if parts[0] == "run":
        return len(parts) == 2 and parts[1] in ("id", "owner", "started_at")
    return parts[0] in loops


def definition_parse(document: Any) -> Definition:
    """The checked definition, or DefinitionInvalid with every error (step, field, message)."""
    if not isinstance(document, dict):
        raise DefinitionInvalid([DefinitionError((), "", "(document)", "A workflow definition is a mapping.")])
    try:
        definition = Definition.model_validate(document)
    except ValidationError as error:
        raise DefinitionInvalid(_from_pydantic(document, error)) from error
    errors = _check_semantics(definition)
    if errors:
        raise DefinitionInvalid(errors)
    return definition


def definition_document(definition: Definition) -> dict[str, Any]:
    """The canonical JSON form that is stored (aliases as written, defaults left out)."""
    return definition.model_dump(mode="json", by_alias=True, exclude_defaults=True, exclude={"steps"}) | {
        "steps": [_step_document(step) for step in definition.steps]
    }


def _step_document(step: AnyStep) -> dict[str, Any]:
    nested = {name for name, _ in children(step)}
    aliases = {"then": "then", "else": "else_", "steps": "steps"}
    document = step.model_dump(
        mode="json", by_alias=True, exclude_defaults=True, exclude={aliases[name] for name in nested}
    )
    document["kind"] = step.kind
    ordered = {"id": document.pop("id"), "kind": document.pop("kind"), **document}
    for name, block in children(step):
        if block or name != "else":
            ordered[name] = [_step_document(inner) for inner in block]
    return ordered
