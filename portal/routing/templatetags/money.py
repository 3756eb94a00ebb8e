from __future__ import annotations

from django import template
from django.conf import settings

from portal.routing.money import money_text

register = template.Library()


@register.filter
def money(value: object) -> str:
    """A cost, price or budget with enough digits to be true: `{{ usage.cost|money }}`."""
    return money_text(value)


@register.simple_tag
def routing_currency() -> str:
    """The currency label of every price, cost and budget (ROUTING_CURRENCY)."""
    return str(settings.ROUTING_CURRENCY)
