from __future__ import annotations

from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "portal.workflows"
    label = "workflows"
    verbose_name = "Workflows"

    def ready(self) -> None:
        from audit import links
        from knowledge import hooks as knowledge_hooks
        from portal.customers import hooks as customer_hooks
        from portal.workflows import tasks

        # Event triggers: the other apps call whoever registered once their change is committed.
        knowledge_hooks.register_document_ready(
            lambda document_id: tasks.event_queue("document_ingested", document_id=document_id)
        )
        customer_hooks.register("customer_created", lambda **ids: tasks.event_queue("customer_created", **ids))
        customer_hooks.register("interaction_added", lambda **ids: tasks.event_queue("interaction_added", **ids))
        links.register_url_name("workflows.workflow", "workflows:workflow_detail", "workflow_id")
        links.register_url_name("workflows.run", "workflows:run_detail", "run_id")
