from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        from governance.roles import role_permissions_sync
        from governance.services import policy_defaults_ensure

        # Permissions only exist after every app has migrated, so the roles get theirs here.
        post_migrate.connect(role_permissions_sync, dispatch_uid="governance.role_permissions_sync")
        # After a flush (tests) the data-migrated policy is gone too: a policy must always be in force.
        post_migrate.connect(policy_defaults_ensure, dispatch_uid="governance.policy_defaults_ensure")
