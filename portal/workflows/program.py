"""A definition's step tree as a flat program (steps, branches, loops and jumps), and templates over the run's
variables.

A run keeps only a program counter, its for-each frames and its variables (Run.state), so moving on by one step
costs the same at the first step as at the thousandth item of a for-each, and a run resumes exactly where the
database says it stands.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from portal.workflows.definition import (
    TEMPLATE_REFERENCE,
    AnyStep,
    ConditionStep,
    Definition,
    ForEachStep,
    definition_parse,
)

ERROR_MISSING_VARIABLE = "The variable {reference!r} has no value in this run."


@dataclass(frozen=True)
class Instruction:
    op: str  # step | branch | loop | next | jump
    step: AnyStep | None = None
    target: int = -1  # branch: start of else; loop: after the loop; next: start of the body; jump: where
    loop_id: str = ""  # next: the for-each it belongs to


@dataclass(frozen=True)
class Program:
    instructions: tuple[Instruction, ...]
    next_of_loop: dict[str, int]  # for-each id -> pc of its `next` (where a skipped item goes)

    def timeout_at(self, pc: int) -> int:
        if 0 <= pc < len(self.instructions):
            step = self.instructions[pc].step
            if step is not None:
                return step.timeout_seconds
        return 300


def _emit(steps: list[Any], out: list[Instruction], loops: dict[str, int]) -> None:
    for step in steps:
        if isinstance(step, ConditionStep):
            branch_at = len(out)
            out.append(Instruction("branch", step))
            _emit(step.then, out, loops)
            if step.else_:
                jump_at = len(out)
                out.append(Instruction("jump"))
                out[branch_at] = Instruction("branch", step, target=len(out))
                _emit(step.else_, out, loops)
                out[jump_at] = Instruction("jump", target=len(out))
            else:
                out[branch_at] = Instruction("branch", step, target=len(out))
        elif isinstance(step, ForEachStep):
            loop_at = len(out)
            out.append(Instruction("loop", step))
            _emit(step.steps, out, loops)
            loops[step.id] = len(out)
            out.append(Instruction("next", target=loop_at + 1, loop_id=step.id))
            out[loop_at] = Instruction("loop", step, target=len(out))
        else:
            out.append(Instruction("step", step))


def compile_definition(definition: Definition) -> Program:
    out: list[Instruction] = []
    loops: dict[str, int] = {}
    _emit(definition.steps, out, loops)
    return Program(tuple(out), loops)


@lru_cache(maxsize=256)
def _program_of(version_id: int, canonical: str) -> tuple[Definition, Program]:
    definition = definition_parse(json.loads(canonical))
    return definition, compile_definition(definition)


def program_for(version_id: int, document: dict[str, Any]) -> tuple[Definition, Program]:
    """Versions never change, so each is parsed and compiled once per process."""
    return _program_of(version_id, json.dumps(document, sort_keys=True))


def initial_state() -> dict[str, Any]:
    return {"pc": 0, "frames": [], "vars": {"steps": {}}}


def step_key(step_id: str, frames: list[dict[str, Any]]) -> str:
    return step_id + "".join(f"[{frame['index']}]" for frame in frames)


# ---- templates -------------------------------------------------------------------------------------
class MissingVariable(Exception):
    pass


def variables(*, inputs: dict[str, Any], state: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    return {"inputs": inputs, "run": run, **state.get("vars", {})}


def resolve(reference: str, context: dict[str, Any]) -> Any:
    value: Any = context
    for part in reference.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise MissingVariable(ERROR_MISSING_VARIABLE.format(reference=reference))
    return value


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict) and "text" in value:
        return as_text(value["text"])
    if isinstance(value, list):
        return "\n".join(as_text(item) for item in value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def render(template: str, context: dict[str, Any]) -> str:
    """Substitute each `{{ name.path }}`; a reference without a value fails the step (never renders empty)."""
    return TEMPLATE_REFERENCE.sub(lambda match: as_text(resolve(match.group(1), context)), template or "")


def compare(op: str, left: Any, right: Any) -> bool:
    if op == "is_empty":
        return left in (None, "", [], {})
    if op == "not_empty":
        return left not in (None, "", [], {})
    if op == "contains":
        return as_text(right).lower() in as_text(left).lower()
    if op in ("greater_than", "less_than"):
        try:
            a, b = float(as_text(left)), float(as_text(right))
        except ValueError:
            return False
        return a > b if op == "greater_than" else a < b
    same = as_text(left).strip().lower() == as_text(right).strip().lower()
    return same if op == "equals" else not same
