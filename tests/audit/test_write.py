from __future__ import annotations

from typing import Any

import pytest
from django.forms.models import model_to_dict

from audit.chain import event_hash
from audit.models import AuditEvent
from audit.services import audit

pytestmark = pytest.mark.django_db


def test_the_returned_event_is_exactly_the_stored_row(sam: Any) -> None:
    event = audit(actor=sam, action="test.stored", target=sam, details={"text": "héllo ✓", "nested": {"a": [1, 2]}})
    stored = AuditEvent.objects.get(pk=event.pk)
    assert model_to_dict(stored) == model_to_dict(event)
    assert stored.created_at == event.created_at
    assert stored.hash == event_hash({**model_to_dict(stored), "actor_id": stored.actor_id}) == event.hash
    assert stored.details == {"text": "héllo ✓", "nested": {"a": [1, 2]}}
    assert stored.actor_roles == ["Staff"] and stored.object_id == str(sam.pk)


def test_an_event_that_cannot_be_written_fails_the_callers_transaction() -> None:
    from django.db import DataError, transaction

    with pytest.raises(DataError), transaction.atomic():
        audit(actor=None, action="test.too_long", object_id="x" * 500)
    assert not AuditEvent.objects.filter(action="test.too_long").exists()
