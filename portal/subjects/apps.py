from __future__ import annotations

from django.apps import AppConfig


class SubjectsConfig(AppConfig):
    name = "portal.subjects"
    label = "subjects"
    verbose_name = "Data-subject requests"
