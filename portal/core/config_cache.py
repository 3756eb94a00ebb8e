"""Configuration read once per process and kept until it changes anywhere: the egress policy in force, the
model catalog, the task tiers, and per user the search permission filter's sets (config_cached_item).

Every write to a table registered here (through a service, the site admin, a migration or plain SQL, from
any process) runs a statement trigger that sets the one row of `core_configgeneration` to a fresh value of
a sequence, in the writer's transaction. A reader reads that number first (one tiny query instead of the
configuration's own queries and parsing) and uses what this process kept under the same number, else loads
it again. So a change committed in one process is seen by every other process at its next read. A sequence
never hands out a number twice, so a rolled-back write cannot leave a number that a later, different
configuration would reuse.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from django.db import connection

T = TypeVar("T")

GENERATION_TABLE = "core_configgeneration"
GENERATION_SEQUENCE = "core_config_generation_seq"
GENERATION_FUNCTION = "core_config_generation_bump"

_kept: dict[str, tuple[int, Any]] = {}
# Values kept per item of a key (one per user, say), the ITEMS_KEPT used last; see config_cached_item.
_kept_items: OrderedDict[tuple[str, Hashable], tuple[int, Any]] = OrderedDict()
ITEMS_KEPT = 500  # at a million chunks a user's hidden documents are some 2,500 ids: about 100 KB each
_lock = threading.Lock()
# Inside config_generation_pinned(): the generation read first in the block, reused by the later reads.
_pinned: ContextVar[list[int] | None] = ContextVar("config_generation_pinned", default=None)


@contextmanager
def config_generation_pinned() -> Iterator[None]:
    """Read the generation at most once in this block: for a short phase that only reads configuration (one
    database phase of a question); a change committed meanwhile is seen by the next block."""
    token = _pinned.set([])
    try:
        yield
    finally:
        _pinned.reset(token)


def config_generation(*, unpinned: bool = False) -> int:
    """The configuration generation: read now, or inside config_generation_pinned() the one read first in the
    block; `unpinned` reads it now even there."""
    pinned = None if unpinned else _pinned.get()
    if pinned:
        return pinned[0]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT value FROM {GENERATION_TABLE} WHERE id = 1")  # noqa: S608 - a constant
        row = cursor.fetchone()
    generation = int(row[0]) if row is not None else -1
    if pinned is not None:
        pinned.append(generation)
    return generation


def config_cached(key: str, load: Callable[[], T]) -> T:
    """What `load()` returns, kept per process under the configuration generation it was read at.

    The generation is read before loading: a write committed meanwhile has a newer number, so what was
    loaded is kept under the older one and loaded again at the next read. Whatever is kept is shared by
    every caller of this process, so `load` returns values its callers do not change (or they copy them).
    """
    generation = config_generation()
    with _lock:
        kept = _kept.get(key)
    if kept is not None and kept[0] == generation and generation >= 0:
        return kept[1]  # type: ignore[no-any-return]
    value = load()
    with _lock:
        _kept[key] = (generation, value)
    return value


def config_cached_item(key: str, item: Hashable, load: Callable[[], T], *, unpinned: bool = False) -> T:
    """config_cached for one of many values under `key` (`item`: a user's id, say), of which the ITEMS_KEPT
    used last are kept. `unpinned`: the generation is read now even inside config_generation_pinned(), for
    what must follow a change at once (permissions: the next search after a committed change applies it)."""
    generation = config_generation(unpinned=unpinned)
    with _lock:
        kept = _kept_items.get((key, item))
        if kept is not None and kept[0] == generation and generation >= 0:
            _kept_items.move_to_end((key, item))
            return kept[1]  # type: ignore[no-any-return]
    value = load()
    with _lock:
        _kept_items[(key, item)] = (generation, value)
        _kept_items.move_to_end((key, item))
        while len(_kept_items) > ITEMS_KEPT:
            _kept_items.popitem(last=False)
    return value


def config_forget() -> None:
    """Drop everything kept (the tests' fixtures; a change is seen without it)."""
    with _lock:
        _kept.clear()
        _kept_items.clear()


def trigger_sql(table: str) -> tuple[str, str]:
    """(forward, reverse) SQL of the statement trigger that moves the generation on any write to `table`."""
    name = f"{table}_config_generation"
    forward = (
        f"CREATE TRIGGER {name} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {GENERATION_FUNCTION}()"
    )
    return forward, f"DROP TRIGGER IF EXISTS {name} ON {table}"


def column_trigger_sql(table: str, column: str) -> tuple[str, str]:
    """(forward, reverse) SQL of a row trigger that moves the generation when an UPDATE changes `column` of a
    row (a document moved to another knowledge base), and not on the table's other, frequent writes."""
    name = f"{table}_{column}_config_generation"
    forward = (
        f"CREATE TRIGGER {name} AFTER UPDATE OF {column} ON {table} FOR EACH ROW "
        f"WHEN (OLD.{column} IS DISTINCT FROM NEW.{column}) EXECUTE FUNCTION {GENERATION_FUNCTION}()"
    )
    return forward, f"DROP TRIGGER IF EXISTS {name} ON {table}"
