from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate, pre_migrate


def _release_before_audit_migrations(sender: AppConfig, *, plan: Any = None, using: str = "default",
                                     **kwargs: Any) -> None:  # fmt: skip
    from audit.protection import embedded_audit_release

    embedded_audit_release(plan=plan or [], using=using)


def _harden_after_migrate(sender: AppConfig, *, using: str = "default", **kwargs: Any) -> None:
    from audit.protection import embedded_database_harden

    embedded_database_harden(using=using)


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from audit import checks  # noqa: F401  (registers the system check)

        # The audit table is created by the portal role's own migration: the embedded server's superuser
        # takes it away from that role afterwards (audit/protection.py).
        pre_migrate.connect(_release_before_audit_migrations, sender=self, dispatch_uid="audit.release")
        post_migrate.connect(_harden_after_migrate, sender=self, dispatch_uid="audit.harden")
