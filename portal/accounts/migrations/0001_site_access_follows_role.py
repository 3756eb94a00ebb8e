"""Existing accounts: site-admin access (is_staff) follows the Administrator role; the demo admin is no superuser.

Earlier versions created the demo administrator ("admin", admin@demo.invalid) as a superuser, and users
given the Administrator role on the Users page never got the site admin. From now on
portal.accounts.services keeps `is_staff` equal to "superuser or Administrator"; this brings accounts
made before up to that once, each change audited like the service's own.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

ADMINISTRATOR = "Administrator"
DEMO_ADMIN = {"username": "admin", "email": "admin@demo.invalid"}


def forwards(apps: Any, schema_editor: Any) -> None:
    from audit.services import audit

    User = apps.get_model("auth", "User")
    for user in User.objects.filter(is_superuser=True, **DEMO_ADMIN):
        user.is_superuser = False
        user.save(update_fields=["is_superuser"])
        audit(
            actor=None,
            actor_username="system",
            action="user.superuser_removed",
            target=user,
            details={"reason": "the demo administrator is an Administrator, not a superuser"},
        )
    for user in User.objects.all():
        wanted = user.is_superuser or user.groups.filter(name=ADMINISTRATOR).exists()
        if user.is_staff != wanted:
            user.is_staff = wanted
            user.save(update_fields=["is_staff"])
            audit(
                actor=None,
                actor_username="system",
                action="user.site_access_changed",
                target=user,
                details={"before": {"is_staff": not wanted}, "after": {"is_staff": wanted}},
            )


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("governance", "0002_roles"),
        ("audit", "0004_chain_head_function"),
    ]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
