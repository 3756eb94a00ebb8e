"""Customer predictions on the customers app's pages, without that app importing this one:

{% load ml_tags %}{% customer_predictions customer %}            on a record's page
{% predictions_for page as predictions %} ... {% prediction_cell predictions customer.pk %}   in the list
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import template

from portal.ml.selectors import Prediction, predictions_for_customers

register = template.Library()


@register.inclusion_tag("ml/_customer_predictions.html", takes_context=True)
def customer_predictions(context: template.Context, customer: Any) -> dict[str, Any]:
    user = context["request"].user
    return {"predictions": predictions_for_customers(user=user, customer_ids=[customer.pk]).get(customer.pk, [])}


@register.simple_tag(takes_context=True)
def predictions_for(context: template.Context, customers: Iterable[Any]) -> dict[int, list[Prediction]]:
    """One query for a page of customers (only those the user may see)."""
    return predictions_for_customers(user=context["request"].user, customer_ids=[customer.pk for customer in customers])


@register.inclusion_tag("ml/_prediction_cell.html")
def prediction_cell(predictions: dict[int, list[Prediction]], customer_id: int) -> dict[str, Any]:
    return {"predictions": predictions.get(customer_id, [])}
