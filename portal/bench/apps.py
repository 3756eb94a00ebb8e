from __future__ import annotations

from django.apps import AppConfig


class BenchConfig(AppConfig):
    """Only management commands: no models, no URLs, nothing the web process loads per request."""

    name = "portal.bench"
    label = "bench"
    verbose_name = "Evaluation harnesses"
