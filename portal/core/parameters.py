"""Operational parameters: values an administrator tunes while the portal runs (the Settings screen).

Each parameter has a setting in portal/settings.py that gives its default (from the environment or the
code). A value saved on the screen overrides that default, except where the environment variable is set:
then the environment pins the value and the screen says so. Saved values are versioned in
`ParameterVersion` and every change is audited (portal/core/services.py).

Reads are per process and cheap: the current version is cached and looked up again at most every
`PORTAL_PARAMETERS_TTL_SECONDS` (and at once in the process that saved a change), so a change reaches every
web and worker process within that time without a query per read.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from django.conf import settings

Kind = Literal["int", "float", "bool", "money"]
MIB = 1024 * 1024


@dataclass(frozen=True)
class Parameter:
    name: str  # the key stored in a version's values
    label: str
    help: str
    group: str
    kind: Kind
    setting: str  # the setting (and environment variable) that gives the default
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""
    scale: int = 1  # the setting's value is the shown value times this (bytes for megabytes)
    env: str = ""  # the environment variable when it is not named like the setting

    @property
    def env_name(self) -> str:
        return self.env or self.setting

    def default(self) -> Any:
        raw = getattr(settings, self.setting)
        if raw is None or raw == "":
            return None
        if self.kind == "money":
            return Decimal(str(raw))
        return self.coerce(raw / self.scale if self.scale != 1 else raw)

    def coerce(self, value: Any) -> Any:
        if value is None:
            return None
        if self.kind == "bool":
            return bool(value)
        if self.kind == "int":
            return int(value)
        if self.kind == "money":
            return Decimal(str(value))
        return float(value)

    def pinned(self) -> bool:
        """The environment sets this value: the screen shows it and cannot change it."""
        return any(os.environ.get(name, "").strip() for name in (self.env_name, f"{self.env_name}_FILE"))

    def for_setting(self, value: Any) -> Any:
        """The shown value in the setting's own unit."""
        if value is None:
            return None
        return value * self.scale if self.scale != 1 else value


SEARCH = "Search"
UPLOADS = "Uploads"
MEMORY = "Memory"
LEARNING = "Memory learning"
BUDGETS = "Budgets"

PARAMETERS: tuple[Parameter, ...] = (
    Parameter(
        "search_candidates",
        "Candidates per search leg",
        "How many passages each search leg (meaning and words) hands to the fusion. More finds more, costs time.",
        SEARCH,
        "int",
        "KNOWLEDGE_SEARCH_CANDIDATES",
        minimum=5,
        maximum=500,
        unit="passages",
    ),  # fmt: skip
    Parameter(
        "upload_max_mb",
        "Largest upload",
        "A file above this size is refused by name; the rest of the batch goes on.",
        UPLOADS,
        "int",
        "KNOWLEDGE_MAX_UPLOAD_BYTES",
        minimum=1,
        maximum=2048,
        unit="MB",
        scale=MIB,
    ),  # fmt: skip
    Parameter(
        "pdf_max_pages",
        "Most pages in a PDF",
        "A longer PDF ends failed before any page is read, so one file cannot keep the worker busy for long.",
        UPLOADS,
        "int",
        "KNOWLEDGE_MAX_PDF_PAGES",
        minimum=1,
        maximum=100_000,
        unit="pages",
    ),  # fmt: skip
    Parameter(
        "memory_min_similarity",
        "Memory recall threshold",
        "A memory is given to the assistant only when it is at least this similar to the question (0 to 1).",
        MEMORY,
        "float",
        "MEMORY_RETRIEVE_MIN_SIMILARITY",
        minimum=0,
        maximum=1,
    ),  # fmt: skip
    Parameter(
        "memory_duplicate_similarity",
        "Duplicate threshold",
        "A proposed memory this similar to an existing one is treated as the same fact (0 to 1).",
        MEMORY,
        "float",
        "MEMORY_DUPLICATE_SIMILARITY",
        minimum=0,
        maximum=1,
    ),  # fmt: skip
    Parameter(
        "memory_contradiction_similarity",
        "Contradiction threshold",
        "A proposed memory this similar to an "
        "existing one, but not a duplicate, is shown to the reviewer as a possible contradiction (0 to 1).",
        MEMORY,
        "float",
        "MEMORY_CONTRADICTION_SIMILARITY",
        minimum=0,
        maximum=1,
    ),  # fmt: skip
    Parameter(
        "learning_paused",
        "Pause memory learning",
        "While paused, no conversation is read for new memory "
        "proposals; nothing is lost, learning picks up within the look-back when resumed.",
        LEARNING,
        "bool",
        "MEMORY_LEARNING_PAUSED",
    ),  # fmt: skip
    Parameter(
        "learning_idle_minutes",
        "Learn after a conversation is quiet for",
        "Memory learning reads a conversation once nobody has written in it for this long.",
        LEARNING,
        "int",
        "MEMORY_LEARNING_IDLE_MINUTES",
        minimum=1,
        maximum=24 * 60,
        unit="minutes",
    ),  # fmt: skip
    Parameter(
        "learning_lookback_hours",
        "Look back",
        "Conversations quiet for longer than this are left alone.",
        LEARNING,
        "int",
        "MEMORY_LEARNING_LOOKBACK_HOURS",
        minimum=1,
        maximum=24 * 30,
        unit="hours",
    ),  # fmt: skip
    Parameter(
        "learning_batch",
        "Conversations per sweep",
        "At most this many conversations are queued for learning every sweep.",
        LEARNING,
        "int",
        "MEMORY_LEARNING_BATCH",
        minimum=1,
        maximum=1000,
    ),  # fmt: skip
    Parameter(
        "default_budget_per_user",
        "Default monthly budget per user",
        "Applies to every user who has no budget of their own and whose roles have none. Empty: no default budget.",
        BUDGETS,
        "money",
        "ROUTING_DEFAULT_USER_BUDGET",
        minimum=0,
        maximum=1_000_000,
        unit="",
    ),  # fmt: skip
)
BY_NAME = {parameter.name: parameter for parameter in PARAMETERS}


def value_text(parameter: Parameter, value: Any, *, empty: str = "none") -> str:
    """A value as the screen and the version history show it."""
    if value is None:
        return empty
    if parameter.kind == "bool":
        return "on" if parameter.coerce(value) else "off"
    if parameter.kind == "money":
        return f"{settings.ROUTING_CURRENCY} {Decimal(str(value)):.2f}"
    return f"{parameter.coerce(value)}{' ' + parameter.unit if parameter.unit else ''}"


@dataclass(frozen=True)
class Effective:
    parameter: Parameter
    value: Any
    source: Literal["default", "environment", "screen"]

    @property
    def default_text(self) -> str:
        return value_text(self.parameter, self.parameter.default())


class _Cache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: dict[str, Any] = {}
        self.version: int | None = None
        self.checked_at = float("-inf")

    def current(self) -> tuple[int | None, dict[str, Any]]:
        ttl = settings.PORTAL_PARAMETERS_TTL_SECONDS
        now = time.monotonic()
        if now - self.checked_at >= ttl and not _in_event_loop():
            self.reload()
        return self.version, self.values

    def reload(self) -> None:
        from portal.core.models import ParameterVersion

        latest = ParameterVersion.objects.order_by("-number").values("number", "values").first()
        with self.lock:
            self.version = latest["number"] if latest else None
            self.values = dict(latest["values"]) if latest else {}
            self.checked_at = time.monotonic()

    def forget(self) -> None:
        with self.lock:
            self.checked_at = float("-inf")


def _in_event_loop() -> bool:
    """The ORM may not run on an event loop's thread; there the cached values serve until the next sync read."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


_cache = _Cache()


def parameters_forget() -> None:
    """Read the current version again at the next read (after a change in this process, and between tests)."""
    _cache.forget()


def effective(name: str) -> Effective:
    parameter = BY_NAME[name]
    if parameter.pinned():
        return Effective(parameter, parameter.default(), "environment")
    _, values = _cache.current()
    if name in values:
        return Effective(parameter, parameter.coerce(values[name]), "screen")
    return Effective(parameter, parameter.default(), "default")


def parameter_value(name: str) -> Any:
    """The value in force, in the unit of the parameter's setting (bytes for an upload limit). A default is the
    setting itself, not its shown form again (10,000 bytes are 0 whole megabytes on the screen)."""
    current = effective(name)
    if current.source != "screen":
        raw = getattr(settings, current.parameter.setting)
        if raw is None or raw == "":
            return None
        return Decimal(str(raw)) if current.parameter.kind == "money" else current.parameter.coerce(raw)
    return current.parameter.for_setting(current.value)


def parameters_effective() -> list[Effective]:
    return [effective(parameter.name) for parameter in PARAMETERS]


def current_version() -> int | None:
    return _cache.current()[0]
