"""Privacy switches that must be set before any library that could phone home is imported.

Imported first by manage.py, the ASGI/WSGI entry points, the Celery app and the test suite (and by
`portal/__init__.py`, so importing anything from the portal sets them). Only the standard library may be
imported here: this module runs before everything else.

Each switch was found by reading the pinned dependencies' sources for remote fetches and telemetry; the
README ("Nothing phones home") lists them with what each stops, and `manage.py check` (portal/core/checks.py)
reports a switch that is missing, changed, or set too late.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Switch:
    name: str
    value: str
    stops: str  # what it stops, for the system check's message and the README


SWITCHES: tuple[Switch, ...] = (
    Switch(
        "ORT_DISABLE_TELEMETRY",
        "1",
        "onnxruntime's built-in telemetry client (OneCollector): DNS lookups of mobile.events.data.microsoft.com, "
        "uploads of session events, and a device id and event queue under ~/.cache/Microsoft/DeveloperTools/"
        ".onnxruntime. Read when onnxruntime loads; disable_telemetry_events() afterwards does not stop it",
    ),
    Switch(
        "HF_HUB_OFFLINE",
        "1",
        "every model-hub request of huggingface_hub (which transformers, sentence-transformers, optimum and "
        "tokenizers use): model, tokenizer and config downloads",
    ),
    Switch("TRANSFORMERS_OFFLINE", "1", "the model-hub requests of transformers (its own name for HF_HUB_OFFLINE)"),
    Switch("HF_HUB_DISABLE_TELEMETRY", "1", "the usage telemetry huggingface_hub and transformers send to the hub"),
    Switch("DO_NOT_TRACK", "1", "telemetry in every tool that honours this cross-tool opt-out (huggingface_hub does)"),
    Switch(
        "LITELLM_LOCAL_MODEL_COST_MAP",
        "True",
        "litellm's download of its price list from raw.githubusercontent.com when it is imported",
    ),
    Switch(
        "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS",
        "True",
        "litellm's download of anthropic_beta_headers_config.json from GitHub for requests that carry an "
        "anthropic-beta header",
    ),
    Switch("LITELLM_LOCAL_BLOG_POSTS", "True", "litellm's fetch of its blog's RSS feed from docs.litellm.ai"),
    Switch(
        "LITELLM_MODE",
        "PRODUCTION",
        "litellm's loading of a .env file into the environment when it is imported (its default DEV mode "
        "looks for one in every folder above its package, the project folder included)",
    ),
)
OFFLINE_ENVIRONMENT: dict[str, str] = {switch.name: switch.value for switch in SWITCHES}
# Not about privacy: tokenizers' threads do not survive Celery's fork.
PROCESS_ENVIRONMENT: dict[str, str] = {"TOKENIZERS_PARALLELISM": "false"}

# Libraries that read the switches when they are imported (directly or through huggingface_hub): a switch set
# after one of these was imported does nothing for that library.
PROTECTED_MODULES = ("onnxruntime", "huggingface_hub", "transformers", "sentence_transformers", "optimum", "litellm")

# What this process was started with, and what was imported before the switches (for the system check).
INHERITED_ENVIRONMENT: dict[str, str | None] = {name: os.environ.get(name) for name in OFFLINE_ENVIRONMENT}
IMPORTED_BEFORE_SWITCHES: tuple[str, ...] = tuple(name for name in PROTECTED_MODULES if name in sys.modules)

TELEMETRY_QUEUE = Path("Microsoft") / "DeveloperTools" / ".onnxruntime"
MESSAGE_QUEUE_REMOVED = (
    "Removed onnxruntime's telemetry queue (device id and unsent events) that an earlier run left at %s"
)

logger = logging.getLogger(__name__)


def apply() -> None:
    # Overwrites what the environment says: nobody turns the protection off by accident.
    for name, value in {**OFFLINE_ENVIRONMENT, **PROCESS_ENVIRONMENT}.items():
        os.environ[name] = value


def switch_is_set(name: str, value: str | None) -> bool:
    return value is not None and value.strip().lower() == OFFLINE_ENVIRONMENT[name].lower()


def telemetry_queue_paths() -> list[Path]:
    """Where onnxruntime keeps its queue: under $XDG_CACHE_HOME when set, else ~/.cache (check both)."""
    bases = []
    xdg_cache = os.environ.get("XDG_CACHE_HOME")
    if xdg_cache:
        bases.append(Path(xdg_cache))
    with contextlib.suppress(RuntimeError, KeyError):  # no home directory: onnxruntime had nowhere to write
        bases.append(Path.home() / ".cache")
    return list(dict.fromkeys(base / TELEMETRY_QUEUE for base in bases))


def telemetry_queue_remove() -> list[Path]:
    """Remove the queue a run without ORT_DISABLE_TELEMETRY left behind; log each removal once.

    The folder is renamed before it is deleted, so of several processes starting at once exactly one
    removes it and says so.
    """
    removed = []
    for path in telemetry_queue_paths():
        claimed = path.with_name(f"{path.name}.removing-{os.getpid()}")
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            continue
        except OSError as error:  # not ours to remove (permissions): say so rather than stop the start
            logger.warning("Could not remove onnxruntime's telemetry queue at %s: %s", path, error)
            continue
        shutil.rmtree(claimed, ignore_errors=True)
        for parent in (path.parent, path.parent.parent):  # DeveloperTools, Microsoft: only when left empty
            try:
                parent.rmdir()
            except OSError:
                break
        logger.warning(MESSAGE_QUEUE_REMOVED, path)
        removed.append(path)
    return removed


apply()
