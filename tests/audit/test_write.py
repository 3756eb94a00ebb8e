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


@pytest.mark.django_db(transaction=True)
def test_a_batch_writes_its_events_together_at_its_end_in_order_and_chained(sam: Any) -> None:
    from django.db import transaction

    from audit.selectors import audit_chain_verify
    from audit.services import audit_batch

    before = AuditEvent.objects.count()
    with audit_batch():
        first = audit(actor=sam, action="test.batch_first", details={"n": 1})
        with transaction.atomic():  # inside a transaction: written there and then, as always
            audit(actor=None, action="test.batch_inside_transaction")
        audit(actor=sam, action="test.batch_second", target=sam)
        assert first.pk is None
        assert AuditEvent.objects.count() == before + 1
    rows = list(AuditEvent.objects.order_by("seq")[before:])
    assert [row.action for row in rows] == ["test.batch_inside_transaction", "test.batch_first", "test.batch_second"]
    assert rows[2].seq == rows[1].seq + 1 and rows[2].previous_hash == rows[1].hash
    assert rows[1].actor_roles == ["Staff"] and rows[1].created_at == first.created_at
    assert audit_chain_verify().intact


@pytest.mark.django_db(transaction=True)
def test_a_batch_that_ends_with_an_error_still_writes_its_events(sam: Any) -> None:
    from audit.services import audit_batch

    with pytest.raises(RuntimeError), audit_batch():
        audit(actor=sam, action="test.batch_before_error")
        raise RuntimeError("stage failed")
    assert AuditEvent.objects.filter(action="test.batch_before_error").count() == 1
