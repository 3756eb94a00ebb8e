"""Create the four roles as Groups with their descriptions (permissions: governance.roles)."""

from __future__ import annotations

from typing import Any

from django.db import migrations

ROLES = [
    ("Administrator", "Runs the portal: manages users and their roles, providers and assistant profiles."),
    ("Governance officer", "Decides what may leave the building: egress policies, data classes, term lists."),
    ("Auditor", "Reviews and exports what the AI and the people using it did; changes nothing."),
    ("Staff", "Uses the assistant and the knowledge bases they have been given access to."),
]


def create_roles(apps: Any, schema_editor: Any) -> None:
    Group = apps.get_model("auth", "Group")
    Role = apps.get_model("governance", "Role")
    for position, (name, description) in enumerate(ROLES):
        group, _ = Group.objects.get_or_create(name=name)
        Role.objects.update_or_create(group=group, defaults={"description": description, "position": position})


def remove_roles(apps: Any, schema_editor: Any) -> None:
    Group = apps.get_model("auth", "Group")
    Group.objects.filter(name__in=[name for name, _ in ROLES]).delete()


class Migration(migrations.Migration):
    dependencies = [("governance", "0001_initial")]
    operations = [migrations.RunPython(create_roles, remove_roles)]
