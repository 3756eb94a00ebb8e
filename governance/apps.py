from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        from governance.roles import role_permissions_sync

        # Permissions only exist after every app has migrated, so the roles get theirs here.
        post_migrate.connect(role_permissions_sync, dispatch_uid="governance.role_permissions_sync")
