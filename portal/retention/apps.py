from __future__ import annotations

from django.apps import AppConfig


class RetentionConfig(AppConfig):
    name = "portal.retention"
    label = "retention"
    verbose_name = "Retention and legal hold"
