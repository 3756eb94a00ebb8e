"""Publish version 1 of the egress policy with safe defaults, so a new install never runs without one.

Personal data classes are pseudonymized, credentials, national ids, cards and bank accounts are blocked,
confidential knowledge stays out of cloud prompts and local-only knowledge never leaves the server.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

DEFAULT_REASON = "Safe defaults of a new install."


def publish_defaults(apps: Any, schema_editor: Any) -> None:
    from governance.policy import default_document, document_diff

    PolicyVersion = apps.get_model("governance", "PolicyVersion")
    if PolicyVersion.objects.exists():
        return
    document = default_document()
    PolicyVersion.objects.create(number=1, document=document, reason=DEFAULT_REASON, diff=document_diff(None, document))


def remove_defaults(apps: Any, schema_editor: Any) -> None:
    apps.get_model("governance", "PolicyVersion").objects.filter(number=1, author__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("governance", "0003_policies_terms_vault")]
    operations = [migrations.RunPython(publish_defaults, remove_defaults)]
