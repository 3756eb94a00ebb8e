"""What the code can write to the audit trail, found by reading the source (no import, no database).

* `audited_actions()`: every action name passed to `audit(action=...)` anywhere in the project's apps
  (a string, a module constant, or the fixed start of an f-string, shown with a trailing `*`).
* `unaudited_writers()`: public functions of every app's `services.py` (or `services/` package) that write
  data (`.save()`, `.create()`, `.delete()`, `bulk_create`, queryset `.update()`, relation `.set()` ...)
  but never reach `audit(...)`, directly or through a helper of the same module or another service.

Both are heuristics over the syntax tree, good enough to keep a growing team honest: the test in
tests/audit/test_coverage.py fails on a new unaudited writer unless it is allow-listed there, with a reason.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SKIPPED_DIRS = {".venv", "var", "tests", "migrations", "node_modules", "static", "templates", "__pycache__", ".git"}

# Calls that always change the database, whatever they are called on.
ALWAYS_WRITES = {
    "save", "delete", "bulk_create", "bulk_update", "get_or_create", "update_or_create", "create_user",
    "create_superuser", "set_password_and_save",
}  # fmt: skip
# Calls that write when made on a manager, queryset or relation (`Model.objects.create`, `qs.update`,
# `user.groups.set`) but are also common on dicts and sets (`seen.add`, `details.update`): counted only when
# called on an attribute or a call result, never on a plain local name.
WRITES_ON_MANAGERS = {"create", "update", "set", "add", "remove", "clear", "execute", "raw_delete", "assign_perm"}
# Functions whose call writes an audit event.
AUDIT_FUNCTIONS = {"audit"}


@dataclass
class FunctionFacts:
    module: str
    name: str
    line: int
    public: bool
    writes: list[str] = field(default_factory=list)
    audits: bool = False
    calls: set[str] = field(default_factory=set)  # names called as plain functions

    @property
    def qualified(self) -> str:
        return f"{self.module}.{self.name}"


def project_python_files(root: Path = PROJECT_ROOT) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if any(part in SKIPPED_DIRS or part.startswith(".") for part in relative.parts[:-1]):
            continue
        if len(relative.parts) == 1:  # manage.py and other top-level scripts
            continue
        if path.name.startswith("bench_"):  # benchmarks write to scratch copies, never to the real trail
            continue
        yield path


def module_name(path: Path, root: Path = PROJECT_ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_services_module(path: Path, root: Path = PROJECT_ROOT) -> bool:
    parts = path.relative_to(root).parts
    return path.name == "services.py" or "services" in parts[:-1]


def _string_constants(tree: ast.Module) -> dict[str, str]:
    constants: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = node.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                for target in targets:
                    if isinstance(target, ast.Name):
                        constants[target.id] = value.value
    return constants


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _actions_of_value(value: ast.expr, constants: dict[str, str]) -> list[str]:
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return [value.value]
    if isinstance(value, ast.Name) and value.id in constants:
        return [constants[value.id]]
    if isinstance(value, ast.IfExp):  # "knowledge.access_granted" if wanted else "knowledge.access_revoked"
        return _actions_of_value(value.body, constants) + _actions_of_value(value.orelse, constants)
    if isinstance(value, ast.JoinedStr):  # f"routing.{model}_changed" -> "routing.*_changed"
        return [
            "".join(
                part.value if isinstance(part, ast.Constant) and isinstance(part.value, str) else "*"
                for part in value.values
            )
        ]
    return ["<dynamic>"]


def _actions_of(call: ast.Call, constants: dict[str, str]) -> list[str]:
    for keyword in call.keywords:
        if keyword.arg == "action":
            return _actions_of_value(keyword.value, constants)
    return []


def _is_audit_call(call: ast.Call) -> bool:
    if isinstance(call.func, ast.Name):
        return call.func.id in AUDIT_FUNCTIONS
    # `audit_services.audit(...)` or `services.audit(...)`
    return isinstance(call.func, ast.Attribute) and call.func.attr in AUDIT_FUNCTIONS


def _write_of(call: ast.Call) -> str | None:
    if not isinstance(call.func, ast.Attribute):
        return None
    method = call.func.attr
    if method in ALWAYS_WRITES:
        return method
    if method in WRITES_ON_MANAGERS and isinstance(call.func.value, ast.Attribute | ast.Call):
        receiver = ast.unparse(call.func.value)
        if method == "execute" and "cursor" not in receiver:
            return None
        return f"{receiver}.{method}" if len(receiver) <= 60 else method
    return None


def _function_facts(module: str, function: ast.FunctionDef | ast.AsyncFunctionDef) -> FunctionFacts:
    facts = FunctionFacts(module, function.name, function.lineno, not function.name.startswith("_"))
    for node in ast.walk(function):
        if not isinstance(node, ast.Call):
            continue
        if _is_audit_call(node):
            facts.audits = True
        written = _write_of(node)
        if written:
            facts.writes.append(written)
        name = _called_name(node)
        if name:
            facts.calls.add(name)
    return facts


@dataclass(frozen=True)
class ScanResult:
    actions: dict[str, list[str]]  # action -> ["module:line", ...]
    functions: dict[str, FunctionFacts]  # qualified name -> facts (services modules only)


@lru_cache(maxsize=4)
def scan(root: Path = PROJECT_ROOT) -> ScanResult:
    actions: dict[str, list[str]] = {}
    functions: dict[str, FunctionFacts] = {}
    for path in project_python_files(root):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError):
            continue  # a file another engineer is halfway through writing
        module = module_name(path, root)
        constants = _string_constants(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _is_audit_call(node):
                for action in _actions_of(node, constants):
                    actions.setdefault(action, []).append(f"{module}:{node.lineno}")
        if is_services_module(path, root):
            for node in tree.body:
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    facts = _function_facts(module, node)
                    functions[facts.qualified] = facts
    return ScanResult(actions=actions, functions=functions)


def _reaches_audit(facts: FunctionFacts, result: ScanResult) -> bool:
    """True if the function audits, or calls (transitively) a service function that does."""
    by_name: dict[str, list[FunctionFacts]] = {}
    for other in result.functions.values():
        by_name.setdefault(other.name, []).append(other)
    seen: set[str] = set()
    stack = [facts]
    while stack:
        current = stack.pop()
        if current.qualified in seen:
            continue
        seen.add(current.qualified)
        if current.audits:
            return True
        for called in current.calls:
            candidates = by_name.get(called, [])
            # a private helper resolves within its own module; a public service by name anywhere
            same_module = [c for c in candidates if c.module == current.module]
            stack.extend(same_module or [c for c in candidates if c.public])
    return False


def _writes(facts: FunctionFacts, result: ScanResult) -> list[str]:
    """Writes made by the function or by private helpers of its own module that it calls."""
    writes = list(facts.writes)
    seen = {facts.qualified}
    stack = [facts]
    while stack:
        current = stack.pop()
        for called in current.calls:
            helper = result.functions.get(f"{current.module}.{called}")
            if helper is None or helper.public or helper.qualified in seen:
                continue
            seen.add(helper.qualified)
            writes.extend(helper.writes)
            stack.append(helper)
    return writes


@dataclass(frozen=True)
class Violation:
    function: str
    line: int
    writes: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.function} (line {self.line}) writes {', '.join(sorted(set(self.writes)))} without audit()"


def unaudited_writers(root: Path = PROJECT_ROOT) -> list[Violation]:
    result = scan(root)
    violations = []
    for facts in result.functions.values():
        if not facts.public:
            continue
        writes = _writes(facts, result)
        if writes and not _reaches_audit(facts, result):
            violations.append(Violation(facts.qualified, facts.line, tuple(writes)))
    return sorted(violations, key=lambda violation: violation.function)


def audited_actions(root: Path = PROJECT_ROOT) -> list[str]:
    return sorted(scan(root).actions)
