from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        from audit.privacy import register_classifier
        from governance.roles import role_permissions_sync
        from governance.selectors import finding_counts
        from governance.services import policy_defaults_ensure

        # The trail records typed text as a keyed hash with the number of values of each class it held.
        register_classifier(finding_counts)
        # Permissions only exist after every app has migrated, so the roles get theirs here.
        post_migrate.connect(role_permissions_sync, dispatch_uid="governance.role_permissions_sync")
        # After a flush (tests) the data-migrated policy is gone too: a policy must always be in force.
        post_migrate.connect(policy_defaults_ensure, dispatch_uid="governance.policy_defaults_ensure")
