"""Typed readers for settings that come from the environment.

Every reader accepts `<NAME>_FILE` as well: the value is then read from that file, so secrets can come
from Docker/Kubernetes secret mounts instead of the process environment.
"""

from __future__ import annotations

import os
from pathlib import Path

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})
ERROR_NOT_A_BOOLEAN = "{name} must be one of 1/0, true/false, yes/no, on/off (got {value!r})"
ERROR_NOT_AN_INTEGER = "{name} must be a whole number (got {value!r})"


class EnvironmentError_(ValueError):
    """A setting in the environment has a value that cannot be used."""


def _raw(name: str) -> str | None:
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        return Path(file_path).read_text(encoding="utf-8").strip()
    return os.environ.get(name)


def env_str(name: str, default: str = "") -> str:
    value = _raw(name)
    return default if value is None else value


def env_bool(name: str, default: bool = False) -> bool:
    value = _raw(name)
    if value is None:
        return default
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise EnvironmentError_(ERROR_NOT_A_BOOLEAN.format(name=name, value=value))


def env_int(name: str, default: int) -> int:
    value = _raw(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value.strip())
    except ValueError:
        raise EnvironmentError_(ERROR_NOT_AN_INTEGER.format(name=name, value=value)) from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]
