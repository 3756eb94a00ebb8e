"""What the trail may say about text a person typed (a search, a title, a comment, a filename): never the text.

The trail is append-only and goes out in exports, so a card number someone pasted into a search box would
stay there for good. Events record a keyed hash instead (HMAC-SHA256 with AUDIT_TEXT_HASH_KEY, by default
derived from SECRET_KEY), its length and, when governance has registered its detector, how many values of
each data class it held. Whoever holds the key can still answer "was this exact text searched?" by hashing a
candidate (`text_hmac`); nobody can read the text back from the trail.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

Classifier = Callable[[str], Mapping[str, int]]  # text -> {data class: count}
_classifier: dict[str, Classifier] = {}


def register_classifier(classifier: Classifier) -> None:
    """Governance registers its detector here (the audit app imports no other app)."""
    _classifier["default"] = classifier


def _key() -> bytes:
    configured = settings.AUDIT_TEXT_HASH_KEY
    if configured:
        return configured.encode()
    return hashlib.sha256(("audit-text-hash:" + settings.SECRET_KEY).encode()).digest()


def text_hmac(text: str) -> str:
    return hmac.new(_key(), text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def text_fingerprint(text: str, *, name: str) -> dict[str, Any]:
    """`{name}_hmac`, `{name}_chars` and (with a registered detector) `{name}_findings` for an event's details."""
    fingerprint: dict[str, Any] = {f"{name}_hmac": text_hmac(text), f"{name}_chars": len(text)}
    classifier = _classifier.get("default")
    if classifier is not None and text:
        try:
            fingerprint[f"{name}_findings"] = dict(sorted(classifier(text).items()))
        except Exception as error:  # noqa: BLE001 - the event is still written, without the counts
            logger.error("audit: counting the findings of a text failed (%s)", type(error).__name__)
            fingerprint[f"{name}_findings"] = None
    return fingerprint
