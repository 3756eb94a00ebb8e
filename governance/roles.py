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

# app_label.codename for each role. Later features add their permissions here. The Administrator's
# model permissions are also what it may do in the site admin (it has `is_staff` while it has the role);
# governance screens (term lists, policy drafts, the simulator) need governance.manage_policies, which
# only the Governance officer has.
ROLE_PERMISSIONS: dict[str, set[str]] = {
    ADMINISTRATOR: {
        "auth.view_user",
        "auth.add_user",
        "auth.change_user",
        "auth.view_group",
        "governance.manage_users",
        "governance.use_assistant",
        # operational parameters (the Settings screen: search, uploads, memory, learning, default budget)
        "core.manage_parameters",
        "audit.review_auditevent",
        "audit.export_auditevent",
        # assistant profiles (who may USE one is a per-profile guardian permission)
        "assistant.view_assistantprofile",
        "assistant.add_assistantprofile",
        "assistant.change_assistantprofile",
        "assistant.delete_assistantprofile",
        # knowledge bases: creating one (access to each is a per-base guardian permission). The view and
        # change permissions open the site admin's screens, which show a non-superuser only the bases
        # they manage (and those bases' documents): who may read a base, its label, document restrictions.
        "knowledge.add_knowledgebase",
        "knowledge.view_knowledgebase",
        "knowledge.change_knowledgebase",
        "knowledge.view_document",
        "knowledge.change_document",
        "knowledge.delete_document",
        # customers (restricted records: owner, guardian object permission, or view_all_customers)
        "customers.view_customer",
        "customers.add_customer",
        "customers.change_customer",
        "customers.delete_customer",
        "customers.view_all_customers",
        "customers.import_customer",
        "customers.export_customer",
        "customers.view_interaction",
        "customers.add_interaction",
        # AI memory
        "memory.view_memoryitem",
        "memory.add_memoryitem",
        "memory.change_memoryitem",
        "memory.delete_memoryitem",
        "memory.review_memoryitem",
        # model routing: catalog, task-type map, budgets (admin screens) and the usage page
        "routing.view_usage",
        "routing.view_catalogmodel",
        "routing.add_catalogmodel",
        "routing.change_catalogmodel",
        "routing.delete_catalogmodel",
        "routing.view_tasktier",
        "routing.change_tasktier",
        "routing.view_budget",
        "routing.add_budget",
        "routing.change_budget",
        "routing.delete_budget",
        # local models (portal/ml): the registry, training, activation, the relabelling queue
        "ml.view_modelversion",
        "ml.train_model",
        "ml.activate_model",
        "ml.relabel_questions",
        # workflows: definitions (who may RUN one is a per-workflow guardian permission)
        "workflows.view_workflow",
        "workflows.add_workflow",
        "workflows.change_workflow",
        # data-subject requests (portal/subjects): access and erasure for any customer or staff member
        "subjects.handle_subjectrequest",
    },
    GOVERNANCE_OFFICER: {
        "governance.manage_policies",
        "governance.use_assistant",
        # AI memory: officers review what the assistant keeps
        "memory.view_memoryitem",
        "memory.add_memoryitem",
        "memory.change_memoryitem",
        "memory.delete_memoryitem",
        "memory.review_memoryitem",
        "routing.view_catalogmodel",  # where prompts may go: providers, retention, regions
        # local models: the sensitivity suggestions and flagged passages (their verdicts train the models)
        "ml.view_modelversion",
        "ml.review_sensitivity",
        # retention periods (versioned) and legal holds (portal/retention)
        "retention.manage_retention",
        "retention.manage_legalhold",
        # data-subject requests (portal/subjects): access and erasure for any customer or staff member
        "subjects.handle_subjectrequest",
    },
    AUDITOR: {
        "audit.review_auditevent",
        "audit.export_auditevent",
        "audit.verify_auditevent",  # the "Verify the chain" button (audit_verify, run by a worker)
        "memory.view_memoryitem",  # read-only
    },
    STAFF: {
        "governance.use_assistant",
        "customers.view_customer",
        "customers.add_customer",
        "customers.change_customer",
        "customers.view_interaction",
        "customers.add_interaction",
        "memory.view_memoryitem",
        "memory.add_memoryitem",
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
