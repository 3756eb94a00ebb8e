"""The auditor's "Verify the chain" button: a worker walks the chain and the page shows what audit_verify says."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent, AuditVerification
from audit.services import audit_verification_request, audit_verification_run
from tests.accounts.factories import UserFactory
from tests.audit.factories import TAMPERING, superuser_sql, write_events

pytestmark = pytest.mark.django_db


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_auditor_asks_for_a_verification_and_a_worker_reports_an_intact_chain(
    audrey: Any, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_events(5)
    queued: list[int] = []
    monkeypatch.setattr("audit.tasks.audit_verify_task.delay", queued.append)
    client = _client(audrey)
    page = client.get(reverse("audit:event_list")).content.decode()
    assert f'href="{reverse("audit:verify")}"' in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("audit:verify"))
    verification = AuditVerification.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("audit:verify_status", args=[verification.pk])
    assert queued == [verification.pk]  # queued for a worker once the request committed
    requested = AuditEvent.objects.get(action="audit.verification_requested")
    assert requested.actor_username == "audrey" and requested.details["events"] == verification.total
    running = client.get(response["Location"], HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 1s"' in running and "<progress" in running

    audit_verification_run(verification_id=verification.pk)

    verification.refresh_from_db()
    assert verification.status == "done" and verification.report["intact"] is True
    done = client.get(response["Location"], HTTP_HX_REQUEST="true").content.decode()
    assert "Audit trail intact" in done and "every 1s" not in done
    assert f"{verification.total} events, chain intact" in done
    assert "Checkpoints" in done and "Latest valid checkpoint" in done
    finished = AuditEvent.objects.get(action="audit.chain_verified")
    assert finished.outcome == "success" and finished.details["events_total"] == verification.total
    assert finished.object_id == str(verification.pk)


def test_pressing_twice_while_a_run_is_going_does_not_queue_a_second_walk(audrey: Any) -> None:
    first = audit_verification_request(actor=audrey)
    assert audit_verification_request(actor=audrey).pk == first.pk
    assert AuditVerification.objects.count() == 1


@TAMPERING
def test_a_tampered_chain_is_reported_broken_at_the_altered_event(audrey: Any) -> None:
    events = write_events(3)
    superuser_sql("UPDATE audit_auditevent SET action = 'test.forged' WHERE id = %s", [events[1].id])
    verification = audit_verification_request(actor=audrey)
    audit_verification_run(verification_id=verification.pk)

    page = _client(audrey).get(reverse("audit:verify_status", args=[verification.pk])).content.decode()
    assert "Audit trail NOT intact" in page
    assert f'href="{reverse("audit:event_detail", args=[events[1].seq])}"' in page
    assert AuditEvent.objects.get(action="audit.chain_verified").outcome == "failure"


@pytest.mark.parametrize("who", ["sam", "alice", "oscar"])
def test_only_auditors_may_verify(who: str, request: pytest.FixtureRequest) -> None:
    client = _client(request.getfixturevalue(who))
    assert client.get(reverse("audit:verify")).status_code == 403
    assert client.post(reverse("audit:verify")).status_code == 403
    assert not AuditVerification.objects.exists()


def test_another_auditors_run_is_a_404(audrey: Any) -> None:
    verification = audit_verification_request(actor=audrey)
    other = UserFactory.create(username="otto", roles=["Auditor"])
    assert _client(other).get(reverse("audit:verify_status", args=[verification.pk])).status_code == 404
