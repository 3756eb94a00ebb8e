from __future__ import annotations

from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "portal.routing"
    label = "routing"
    verbose_name = "Model routing"
