"""System checks for the privacy switches of portal/offline.py (`manage.py check`, and every command start).

Production mode means two things here:
- not DEBUG: a switch that this process no longer has, or a protected library imported before the switches
  were set, is an Error (in DEBUG, `make dev`, a Warning), so `manage.py run` and `migrate` refuse to start;
- `manage.py check --deploy` (README, "Running in production"): every switch must also be in the
  environment the process was *started* with. portal.offline sets them itself, but only from the moment it
  is imported; whatever ran before (a wrapper script, a sitecustomize, a server that preloads a library) saw
  them missing. Putting them in the service's environment protects every process, however it is started.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from portal import offline

PRIVACY_TAG = "privacy"
ERROR_IMPORTED_TOO_EARLY = (
    "{module} was imported before portal.offline set the privacy switches, so the ones it reads when it "
    "loads do not apply to it."
)
HINT_IMPORTED_TOO_EARLY = (
    "Import nothing before the portal: start the processes with manage.py, portal.asgi / portal.wsgi or "
    "`celery -A portal`, or set {names} in the environment before Python starts."
)
ERROR_SWITCH_CHANGED = "The privacy switch {name} is {value} in this process; it must be {expected}."
ERROR_SWITCH_NOT_INHERITED = "The privacy switch {name} is {value} in the environment this process was started with."
HINT_SWITCH = "Set {name}={expected} in the environment of every portal process; it turns off {stops}."


def _shown(value: str | None) -> str:
    return "missing" if value is None else f"set to {value!r}"


def _hint(switch: offline.Switch) -> str:
    return HINT_SWITCH.format(name=switch.name, expected=switch.value, stops=switch.stops)


def privacy_switches_check(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """Switches applied in time and still in place in this process."""
    level = Warning if settings.DEBUG else Error
    names = ", ".join(f"{name}={value}" for name, value in offline.OFFLINE_ENVIRONMENT.items())
    # An early import is harmless when the process was started with every switch already in its environment.
    inherited = all(offline.switch_is_set(name, value) for name, value in offline.INHERITED_ENVIRONMENT.items())
    messages: list[CheckMessage] = [
        level(
            ERROR_IMPORTED_TOO_EARLY.format(module=module),
            hint=HINT_IMPORTED_TOO_EARLY.format(names=names),
            id="portal.E001",
        )
        for module in ([] if inherited else offline.IMPORTED_BEFORE_SWITCHES)
    ]
    for switch in offline.SWITCHES:
        value = os.environ.get(switch.name)
        if not offline.switch_is_set(switch.name, value):
            messages.append(
                level(
                    ERROR_SWITCH_CHANGED.format(name=switch.name, value=_shown(value), expected=switch.value),
                    hint=_hint(switch),
                    id="portal.E002",
                )
            )
    return messages


def privacy_environment_check(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """(--deploy) Switches present in the environment the process was started with."""
    messages: list[CheckMessage] = []
    for switch in offline.SWITCHES:
        value = offline.INHERITED_ENVIRONMENT[switch.name]
        if not offline.switch_is_set(switch.name, value):
            messages.append(
                Error(
                    ERROR_SWITCH_NOT_INHERITED.format(name=switch.name, value=_shown(value)),
                    hint=_hint(switch),
                    id="portal.E003",
                )
            )
    return messages
