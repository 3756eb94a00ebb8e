from __future__ import annotations

from django.apps import AppConfig


class MlConfig(AppConfig):
    name = "portal.ml"
    label = "ml"
    verbose_name = "Local models"

    def ready(self) -> None:
        from audit import links
        from knowledge import hooks
        from portal.ml import tasks

        # Knowledge (a top-level app) cannot import this app; it calls whoever registered here once a
        # document's new version is searchable, and the scan runs in the worker.
        hooks.register_document_ready(tasks.document_scan_queue)
        links.register_url_name("ml.modelversion", "ml:model_detail", "model_id")
        links.register_url_name("ml.trainingrun", "ml:run_detail", "run_id")
