from __future__ import annotations

from typing import Any

import factory

from governance.models import TermList
from governance.policy import default_document


class TermListFactory(factory.django.DjangoModelFactory[TermList]):
    class Meta:
        model = TermList

    name = factory.Sequence(lambda n: f"Terms {n}")
    data_class = "CUSTOMER_FIELD"
    terms = "Project Nightjar\nAcme Holdings"


def policy_with(role_rules: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The default policy with some rules changed: {"Staff": {"classes": {"PERSON": "allow"}}}."""
    document = default_document()
    for role, changes in role_rules.items():
        rules = document["roles"].setdefault(role, default_document([role])["roles"][role])
        for key, value in changes.items():
            if isinstance(value, dict):
                rules[key].update(value)
            else:
                rules[key] = value
    return document
