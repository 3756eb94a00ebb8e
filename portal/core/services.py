"""Writes of the core app: the operational parameters saved on the Settings screen."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from audit.privacy import text_fingerprint
from audit.services import audit
from portal.core.models import ParameterVersion
from portal.core.parameters import BY_NAME, PARAMETERS, parameters_forget

PERMISSION = "core.manage_parameters"
ERROR_PERMISSION = "Only an administrator may change the portal's settings."
ERROR_REASON_REQUIRED = "Say why the settings change, for the audit trail."
ERROR_NOTHING_CHANGED = "Nothing changed: every value is the one in force."
ERROR_PINNED = "{label} is set by {env} in the environment; change it there."
ERROR_RANGE = "{label} must be between {minimum} and {maximum}."
ERROR_UNKNOWN_VERSION = "There is no settings version {number}."


def require_parameter_manager(user: Any) -> None:
    if not (getattr(user, "is_authenticated", False) and user.has_perm(PERMISSION)):
        raise PermissionDenied(ERROR_PERMISSION)


def _as_json(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def parameters_validate(values: dict[str, Any]) -> dict[str, Any]:
    """{name: value or None}: None clears the screen's value (the default applies again). Raises
    ValidationError with every problem at once."""
    errors: list[str] = []
    clean: dict[str, Any] = {}
    for name, raw in values.items():
        parameter = BY_NAME.get(name)
        if parameter is None:
            errors.append(f"Unknown setting {name!r}.")
            continue
        value = parameter.coerce(raw)
        if value is not None and parameter.kind != "bool":
            low, high = parameter.minimum, parameter.maximum
            if (low is not None and value < low) or (high is not None and value > high):
                errors.append(ERROR_RANGE.format(label=parameter.label, minimum=low, maximum=high))
                continue
        clean[name] = value
    if errors:
        raise ValidationError(errors)
    return clean


@transaction.atomic
def parameters_save(*, actor: Any, values: dict[str, Any], reason: str) -> ParameterVersion:
    """Save a new version from {name: value}; a value equal to the default, or None, leaves the parameter to
    its default. Pinned parameters cannot change."""
    require_parameter_manager(actor)
    reason = reason.strip()
    if not reason:
        raise ValidationError(ERROR_REASON_REQUIRED)
    clean = parameters_validate(values)
    previous = ParameterVersion.objects.select_for_update().order_by("-number").first()
    before: dict[str, Any] = dict(previous.values) if previous else {}
    after = dict(before)
    for name, value in clean.items():
        parameter = BY_NAME[name]
        stored = before.get(name)
        if parameter.pinned():
            if stored is not None or value != parameter.default():
                raise ValidationError(ERROR_PINNED.format(label=parameter.label, env=parameter.env_name))
            continue
        if value is None or value == parameter.default():
            after.pop(name, None)
        else:
            after[name] = _as_json(value)
    diff = [
        {
            "name": parameter.name,
            "label": parameter.label,
            "before": before.get(parameter.name),
            "after": after.get(parameter.name),
        }  # fmt: skip
        for parameter in PARAMETERS
        if before.get(parameter.name) != after.get(parameter.name)
    ]
    if not diff:
        raise ValidationError(ERROR_NOTHING_CHANGED)
    return _version_save(actor=actor, previous=previous, values=after, reason=reason, diff=diff)


@transaction.atomic
def parameters_restore(*, actor: Any, number: int, reason: str) -> ParameterVersion:
    """Go back to an earlier version's values, as a new version (history is never rewritten)."""
    require_parameter_manager(actor)
    target = ParameterVersion.objects.filter(number=number).first()
    if target is None:
        raise ValidationError(ERROR_UNKNOWN_VERSION.format(number=number))
    wanted = {parameter.name: target.values.get(parameter.name) for parameter in PARAMETERS if not parameter.pinned()}
    return parameters_save(actor=actor, values=wanted, reason=reason.strip() or f"Back to version {number}")


def _version_save(
    *, actor: Any, previous: ParameterVersion | None, values: dict[str, Any], reason: str, diff: list[dict[str, Any]]
) -> ParameterVersion:
    version = ParameterVersion(number=(previous.number + 1) if previous else 1, values=values, author=actor,
                               reason=reason, diff=diff)  # fmt: skip
    version.full_clean()
    version.save()
    # the values are operational numbers, never personal data, so the trail keeps them as they are; the typed
    # reason stays on the version row and the trail keeps its keyed fingerprint only (audit/privacy.py)
    audit(actor=actor, action="core.parameters_changed", target=version,
          details={"version": version.number, "previous_version": previous.number if previous else None,
                   "changes": diff, **text_fingerprint(reason, name="reason")})  # fmt: skip
    # this process reads the new version at its next read (inside this transaction too), and again once it
    # is committed so that a read in between cannot keep the uncommitted copy
    parameters_forget()
    transaction.on_commit(parameters_forget)
    return version
