from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "portal.core"
    label = "core"
    verbose_name = "Portal"

    def ready(self) -> None:
        from django.contrib.auth.models import User
        from django.core.checks import register
        from django.db.models.signals import m2m_changed

        from portal.core.memberships import forget_roles_on_change

        m2m_changed.connect(forget_roles_on_change, sender=User.groups.through, dispatch_uid="core.forget_roles")

        from portal.core import checks

        register(checks.privacy_switches_check, checks.PRIVACY_TAG)
        register(checks.privacy_environment_check, checks.PRIVACY_TAG, deploy=True)

        from django.urls import reverse

        from audit import links

        # a settings version is seen on the Settings screen, by whoever may change the settings
        links.register("core.parameterversion", lambda object_id: reverse("settings"))
        links.register_visibility(
            "core.parameterversion", lambda viewer, object_id: viewer.has_perm("core.manage_parameters")
        )
