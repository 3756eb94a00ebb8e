"""Celery tasks of the local-model app: they take ids and call services. Training runs only here, in the
worker, never in a web process."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction

from portal.ml.models import CUSTOMER_PURPOSES, Purpose

logger = logging.getLogger(__name__)
SCAN_BATCH = 500


@shared_task(name="ml.train", acks_late=True)
def training_run_task(run_id: int) -> str:
    from portal.ml.services import training_run_execute

    return training_run_execute(run_id=run_id)


@shared_task(name="ml.document_scan", acks_late=True)
def document_scan_task(document_id: int) -> dict[str, int]:
    from portal.ml.services import document_scan

    return document_scan(document_id=document_id)


@shared_task(name="ml.scan_all_passages", acks_late=True)
def scan_all_passages_task() -> int:
    """All searchable passages, in batches (after a sensitivity or injection model was activated)."""
    from knowledge.selectors import labelled_chunks
    from portal.ml.services import passages_scan

    after, scanned = 0, 0
    while True:
        chunks = labelled_chunks(after_id=after, limit=SCAN_BATCH)
        if not chunks:
            return scanned
        passages_scan(chunks=chunks)
        scanned += len(chunks)
        after = chunks[-1].chunk_id


@shared_task(name="ml.customer_predictions", acks_late=True)
def customer_predictions_task(purpose: str) -> int:
    from portal.ml.services import customer_predictions_refresh

    return customer_predictions_refresh(purpose=purpose)


def document_scan_queue(document_id: int) -> None:
    """knowledge's document-ready hook: scan the new version in the worker, if a model could flag it."""
    from portal.ml.models import ModelState, ModelVersion

    wanted = ModelVersion.objects.filter(state=ModelState.ACTIVE, purpose__in=[Purpose.SENSITIVITY, Purpose.INJECTION])
    if wanted.exists():
        document_scan_task.delay(document_id)


def after_activation_queue(purpose: str) -> None:
    """What a newly active model changes: existing passages are rescanned, customer predictions redone."""
    if purpose in (Purpose.SENSITIVITY, Purpose.INJECTION):
        transaction.on_commit(scan_all_passages_task.delay)
    elif purpose in CUSTOMER_PURPOSES:
        transaction.on_commit(lambda: customer_predictions_task.delay(purpose))


RANKER_RETRAIN_DELAY_SECONDS = 120  # documents often arrive in batches: one retraining after the batch


@shared_task(name="ml.retrieval_ranker_train", acks_late=True)
def retrieval_ranker_train_task(knowledge_base_id: int) -> dict[str, object]:
    """Retrain a knowledge base's ranker (idempotent: nothing is trained when the base has not changed)."""
    from portal.ml.ranker import retrieval_ranker_train

    return retrieval_ranker_train(knowledge_base_id=knowledge_base_id)


@shared_task(name="ml.rankers_refresh", acks_late=True)
def rankers_refresh_task() -> dict[int, str]:
    """Periodic (beat): retrain the ranker of every base large enough for one whose documents changed or that
    gathered SIGNALS_RETRAIN_STEP new helpful-answer questions since its last training; the rest say
    "unchanged" without training."""
    from knowledge.ranking import ranker_eligible_bases
    from portal.ml.ranker import retrieval_ranker_train

    return {
        knowledge_base_id: str(retrieval_ranker_train(knowledge_base_id=knowledge_base_id)["status"])
        for knowledge_base_id in ranker_eligible_bases()
    }


def ranker_retrain_queue(document_id: int) -> None:
    """knowledge's document-ready hook: retrain the ranker of the document's base, after the batch settles."""
    from knowledge.ranking import MIN_CHUNKS, searchable_chunk_count
    from knowledge.selectors import document_knowledge_base_id

    knowledge_base_id = document_knowledge_base_id(document_id=document_id)
    # a base too small for a ranker keeps fusion: nothing to queue
    if knowledge_base_id is not None and searchable_chunk_count(knowledge_base_id) >= MIN_CHUNKS:
        retrieval_ranker_train_task.apply_async((knowledge_base_id,), countdown=RANKER_RETRAIN_DELAY_SECONDS)
