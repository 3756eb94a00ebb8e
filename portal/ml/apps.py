from __future__ import annotations

from django.apps import AppConfig


class MlConfig(AppConfig):
    name = "portal.ml"
    label = "ml"
    verbose_name = "Local models"

    def ready(self) -> None:
        from audit import links
        from knowledge import hooks, ranking
        from portal.ml import ranker, tasks

        # Knowledge (a top-level app) cannot import this app; it calls whoever registered here once a
        # document's new version is searchable, and the scan runs in the worker.
        hooks.register_document_ready(tasks.document_scan_queue)
        # The same door for the retrieval ranker: knowledge asks for a base's scorer at search time, and a
        # base's ranker is retrained in the worker once its documents change.
        hooks.register_document_ready(tasks.ranker_retrain_queue)
        ranking.register_ranker_provider(ranker.scorer_for)
        ranking.register_ranker_trainer(_train_ranker)
        links.register_url_name("ml.modelversion", "ml:model_detail", "model_id")
        links.register_url_name("ml.trainingrun", "ml:run_detail", "run_id")


def _train_ranker(knowledge_base_id: int) -> dict[str, object]:
    from portal.ml.ranker import retrieval_ranker_train

    return retrieval_ranker_train(knowledge_base_id=knowledge_base_id, force=True)
