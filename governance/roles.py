"""The portal's roles: Django Groups with a description and the permissions that match them.

The groups themselves are created by a data migration (governance/migrations/0002_roles.py); their
permissions are kept equal to ROLE_PERMISSIONS after every `migrate`, because permissions of apps that
land later only exist once those apps have migrated.
"""

from __future__ import annotations

from typing import Any

ADMINISTRATOR = "Administrator"
GOVERNANCE_OFFICER = "Governance officer"
AUDITOR = "Auditor"
STAFF = "Staff"

ROLE_DESCRIPTIONS: dict[str, str] = {
    ADMINISTRATOR: "Runs the portal: manages users and their roles, providers and assistant profiles.",
    GOVERNANCE_OFFICER: "Decides what may leave the building: egress policies, data classes, term lists.",
    AUDITOR: "Reviews and exports what the AI and the people using it did; changes nothing.",
    STAFF: "Uses the assistant and the knowledge bases they have been given access to.",
}

# app_label.codename for each role. Later features add their permissions here.
ROLE_PERMISSIONS: dict[str, set[str]] = {
    ADMINISTRATOR: {
        "auth.view_user",
        "auth.add_user",
        "auth.change_user",
        "auth.view_group",
        "governance.manage_users",
        "governance.use_assistant",
        "audit.review_auditevent",
        "audit.export_auditevent",
    },
    GOVERNANCE_OFFICER: {
        "governance.manage_policies",
        "governance.use_assistant",
    },
    AUDITOR: {
        "audit.review_auditevent",
        "audit.export_auditevent",
    },
    STAFF: {
        "governance.use_assistant",
    },
}

ROLE_ORDER = [ADMINISTRATOR, GOVERNANCE_OFFICER, AUDITOR, STAFF]


def role_permissions_sync(sender: Any = None, **kwargs: Any) -> None:
    """Make sure every role exists with exactly the permissions listed above (idempotent).

    Runs after every `migrate` and `flush`, so roles also come back after a database is emptied.
    """
    from django.contrib.auth.models import Group, Permission

    from governance.models import Role

    using = kwargs.get("using", "default")
    for position, role_name in enumerate(ROLE_ORDER):
        wanted = ROLE_PERMISSIONS[role_name]
        group, _ = Group.objects.using(using).get_or_create(name=role_name)
        Role.objects.using(using).get_or_create(
            group=group, defaults={"description": ROLE_DESCRIPTIONS[role_name], "position": position}
        )
        permissions = []
        for dotted in sorted(wanted):
            app_label, codename = dotted.split(".", 1)
            permission = (
                Permission.objects.using(using).filter(content_type__app_label=app_label, codename=codename).first()
            )
            if permission is not None:
                permissions.append(permission)
        group.permissions.set(permissions)
