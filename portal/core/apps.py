from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "portal.core"
    label = "core"
    verbose_name = "Portal"

    def ready(self) -> None:
        from django.core.checks import register

        from portal.core import checks

        register(checks.privacy_switches_check, checks.PRIVACY_TAG)
        register(checks.privacy_environment_check, checks.PRIVACY_TAG, deploy=True)
