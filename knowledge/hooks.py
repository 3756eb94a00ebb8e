"""Callbacks run after a document's new version became searchable (registered by apps built on top).

Knowledge is a top-level app and imports no `portal/*` app; a feature that wants to look at freshly
ingested documents (the local sensitivity and injection models, portal/ml) registers a callback in its
AppConfig.ready(). Callbacks run after the activating transaction commits, take the document id, and
should only queue work: a failing callback is logged and never fails the ingestion.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

DocumentReady = Callable[[int], None]
_callbacks: list[DocumentReady] = []


def register_document_ready(callback: DocumentReady) -> None:
    if callback not in _callbacks:
        _callbacks.append(callback)


def document_ready(document_id: int) -> None:
    for callback in list(_callbacks):
        try:
            callback(document_id)
        except Exception:  # noqa: BLE001 - a listener's failure must not undo or fail the ingestion
            logger.exception("knowledge: a document-ready callback failed for document %s", document_id)
