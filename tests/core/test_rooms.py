"""The rooms and doors of CONVENTIONS.md, checked on the source (a small AST scan, no import-linter).

1. The top-level apps (audit, governance, knowledge) never import a `portal/*` app other than `portal.core`
   (the project's own modules, such as `portal.env`, are not apps).
2. No app imports another app's models: it reads through that app's selectors and writes through its
   services. A model's choices (an enum such as `audit.models.Outcome`) are values, not a way into the
   other app's tables, so they may be imported; so may anything under `if TYPE_CHECKING:`, which only
   names a type. Benchmark and evaluation harnesses (`<app>/bench/`, `portal/bench/` and the `bench_*` /
   `eval_*` management commands) build their own fixtures, as tests do, and never run in a request, so they
   are not held to rule 2. Migrations are left alone: Django writes them with real references.

Exceptions are listed in ALLOWED_MODEL_IMPORTS, each with its reason; an entry that no longer matches an
import fails the test, so the list only shrinks.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.db import models

from tests.conftest import REPO_ROOT

TOP_LEVEL_APPS = ("audit", "governance", "knowledge")
PORTAL_APPS = tuple(sorted(path.parent.name for path in (REPO_ROOT / "portal").glob("*/apps.py")))
ALL_APPS = (*TOP_LEVEL_APPS, *(f"portal.{name}" for name in PORTAL_APPS))

RETENTION_REASON = (
    "retention deletes every kind of aged data in plain batched DELETEs and excludes what a legal hold "
    "covers with subqueries over the other apps' tables; per-app purge services would turn one statement per "
    "batch into one call per app and kind. Moving them into each app's services is follow-up work."
)
SUBJECTS_REASON = (
    "a data-subject request must find everything the portal holds about one person, in every app: the access "
    "bundle reads, erasure deletes and scrubs, and the verification scans every text column of every model; "
    "going through each app's selectors would need a per-app 'everything about this customer' API first. "
    "Follow-up work, as for retention."
)
# (importing file, imported module) -> why it may reach into that app's models for now
ALLOWED_MODEL_IMPORTS: dict[tuple[str, str], str] = {
    ("portal/retention/selectors.py", "portal.assistant.models"): RETENTION_REASON,
    ("portal/retention/selectors.py", "audit.models"): RETENTION_REASON,
    ("portal/retention/selectors.py", "governance.models"): RETENTION_REASON,
    ("portal/retention/selectors.py", "knowledge.models"): RETENTION_REASON,
    ("portal/retention/selectors.py", "portal.customers.models"): RETENTION_REASON,
    ("portal/retention/selectors.py", "portal.memory.models"): RETENTION_REASON,
    ("portal/retention/selectors.py", "portal.routing.models"): RETENTION_REASON,
    ("portal/retention/services.py", "portal.assistant.models"): RETENTION_REASON,
    ("portal/retention/services.py", "portal.customers.models"): RETENTION_REASON,
    ("portal/retention/services.py", "governance.models"): RETENTION_REASON,
    ("portal/retention/services.py", "portal.ml.models"): RETENTION_REASON,
    ("portal/subjects/collect.py", "audit.models"): SUBJECTS_REASON,
    ("portal/subjects/collect.py", "portal.assistant.models"): SUBJECTS_REASON,
    ("portal/subjects/collect.py", "portal.customers.models"): SUBJECTS_REASON,
    ("portal/subjects/collect.py", "portal.memory.models"): SUBJECTS_REASON,
    ("portal/subjects/collect.py", "portal.ml.models"): SUBJECTS_REASON,
    ("portal/subjects/collect.py", "portal.routing.models"): SUBJECTS_REASON,
    ("portal/subjects/scan.py", "governance.models"): SUBJECTS_REASON,
    ("portal/subjects/scan.py", "knowledge.models"): SUBJECTS_REASON,
    ("portal/subjects/selectors.py", "portal.customers.models"): SUBJECTS_REASON,
    ("portal/subjects/services.py", "portal.assistant.models"): SUBJECTS_REASON,
    ("portal/subjects/services.py", "portal.customers.models"): SUBJECTS_REASON,
    ("portal/subjects/services.py", "portal.ml.models"): SUBJECTS_REASON,
}


@dataclass(frozen=True)
class Import:
    path: str  # the importing file, relative to the repository
    line: int
    module: str  # the imported module
    names: tuple[str, ...]  # names taken from it ("" for `import module`)
    type_checking: bool  # inside `if TYPE_CHECKING:`


def app_of(module: str) -> str | None:
    """The app a dotted module name belongs to, or None (the project package, a library)."""
    for app in sorted(ALL_APPS, key=len, reverse=True):
        if module == app or module.startswith(app + "."):
            return app
    return None


def _sources() -> Iterator[Path]:
    for root in (*TOP_LEVEL_APPS, "portal"):
        for path in sorted((REPO_ROOT / root).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside.update(id(child) for statement in node.body for child in ast.walk(statement))
    return inside


def imports() -> Iterator[tuple[str, Import]]:
    """(importing app, import) for every import of every product module, at any depth."""
    for path in _sources():
        relative = path.relative_to(REPO_ROOT)
        importer = app_of(".".join(relative.with_suffix("").parts))
        if importer is None:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(relative))
        type_checking = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            found: list[tuple[str, tuple[str, ...]]] = []
            if isinstance(node, ast.Import):
                found = [(alias.name, ("",)) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found = [(node.module, tuple(alias.name for alias in node.names))]
            for module, names in found:
                yield importer, Import(str(relative), node.lineno, module, names, id(node) in type_checking)


def _is_model(module: str, name: str) -> bool:
    value = getattr(importlib.import_module(module), name, None)
    return isinstance(value, type) and issubclass(value, models.Model)


def _reaches_models(statement: Import) -> bool:
    """Whether the import hands the importer another app's model classes (or its whole models module)."""
    if statement.module.endswith(".models") or ".models." in statement.module:
        return any(name in ("", "*") or _is_model(statement.module, name) for name in statement.names)
    return "models" in statement.names and (REPO_ROOT / statement.module.replace(".", "/") / "models.py").exists()


def _is_harness(path: str) -> bool:
    parts = Path(path).parts
    command = parts[-1] if parts[-3:-1] == ("management", "commands") else ""
    return "bench" in parts or command.startswith(("bench_", "eval_"))


def test_the_scan_sees_every_app_and_their_imports() -> None:
    expected = {
        "accounts",
        "assistant",
        "bench",
        "core",
        "customers",
        "memory",
        "ml",
        "retention",
        "routing",
        "subjects",
        "workflows",
    }
    assert expected <= set(PORTAL_APPS)
    importers = {importer for importer, _ in imports()}
    assert set(ALL_APPS) <= importers
    assert _reaches_models(Import("x.py", 1, "knowledge.models", ("KnowledgeBase",), False))
    assert not _reaches_models(Import("x.py", 1, "audit.models", ("Outcome",), False))


def test_top_level_apps_import_no_portal_app_but_core() -> None:
    strays = [
        f"{statement.path}:{statement.line} imports {statement.module}"
        for importer, statement in imports()
        if importer in TOP_LEVEL_APPS
        and (app := app_of(statement.module)) is not None
        and app.startswith("portal.")
        and app != "portal.core"
    ]
    assert strays == []


def _model_imports_across_apps() -> list[Import]:
    return [
        statement
        for importer, statement in imports()
        if not statement.type_checking
        and not _is_harness(statement.path)
        and (app := app_of(statement.module)) is not None
        and app != importer
        and _reaches_models(statement)
    ]


def test_no_app_imports_another_apps_models() -> None:
    strays = [
        f"{statement.path}:{statement.line} imports {', '.join(statement.names)} from {statement.module}"
        for statement in _model_imports_across_apps()
        if (statement.path, statement.module) not in ALLOWED_MODEL_IMPORTS
    ]
    assert strays == []


def test_every_allowed_model_import_is_still_needed() -> None:
    found = {(statement.path, statement.module) for statement in _model_imports_across_apps()}
    assert set(ALLOWED_MODEL_IMPORTS) - found == set()


def test_harnesses_are_told_apart_from_product_code() -> None:
    assert _is_harness("portal/bench/egress.py")
    assert _is_harness("portal/retention/management/commands/bench_retention.py")
    assert _is_harness("portal/bench/management/commands/eval_egress.py")
    assert not _is_harness("portal/retention/management/commands/retention_run.py")
    assert not _is_harness("portal/retention/services.py")
