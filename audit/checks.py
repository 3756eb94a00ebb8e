"""System check: does the database role the portal connects as leave the audit trail alone?

Runs when Django checks a database (`manage.py migrate`, `manage.py check --database default`) and DEBUG is
off. One warning per way the connected role could change or remove audit events (audit/hardening.py);
`manage.py db_harden`, run with a superuser DATABASE_URL, fixes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning
from django.db import DatabaseError, connections

HINT = (
    "Connect as an ordinary role (see README, 'Running in production'), then run `python manage.py db_harden "
    "--role <that role>` once with a superuser DATABASE_URL, after `migrate`."
)


@register(Tags.database)
def audit_database_privileges(app_configs: Sequence[Any] | None = None, databases: Sequence[str] | None = None,
                              **kwargs: Any) -> list[CheckMessage]:  # fmt: skip
    if not databases or settings.DEBUG:
        return []
    from audit.protection import audit_protection_problems

    messages: list[CheckMessage] = []
    for alias in databases:
        if alias not in connections:
            continue
        try:
            problems = audit_protection_problems(using=alias)
        except DatabaseError as error:  # an unreachable database is reported by Django's own checks
            messages.append(CheckWarning(f"cannot check the audit protection: {error}", id="audit.W002"))
            continue
        messages += [CheckWarning(f"audit trail not protected: {problem}", hint=HINT, id="audit.W001")
                     for problem in problems]  # fmt: skip
    return messages
