"""Data-subject requests on a real Celery worker process: the bundle is written there and downloaded here."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from portal.customers.models import Customer
from portal.subjects.models import RequestStatus, SubjectRequest
from portal.subjects.services import subject_request_create
from tests.customers.factories import CustomerFactory, InteractionFactory
from tests.responses import streamed
from tests.workers import Workers

pytestmark = pytest.mark.django_db(transaction=True)
FINAL = {RequestStatus.DONE, RequestStatus.FAILED}


def _status(pk: int) -> str:
    return str(SubjectRequest.objects.values_list("status", flat=True).get(pk=pk))


def test_an_access_request_is_written_by_a_real_worker_and_downloadable_by_whoever_asked(
    workers: Workers, olivia: Any
) -> None:
    customer = CustomerFactory.create(
        name="Wilhelmina Draycott", emails=["w@draycott.example"], phones=["0161 496 0111"]
    )
    InteractionFactory.create(customer=customer, summary="Renewal call")
    created = subject_request_create(actor=olivia, kind="access", subject_type="customer", subject_id=customer.pk)
    workers.start()
    workers.wait_for("the bundle to be written", lambda: _status(created.pk) in FINAL)
    created.refresh_from_db()
    assert created.status == RequestStatus.DONE, created.error
    client = Client()
    client.force_login(olivia)
    response = client.get(reverse("subjects:bundle_download", args=[created.pk]))
    assert response.status_code == 200
    bundle = json.loads(zipfile.ZipFile(io.BytesIO(streamed(response))).read("bundle.json"))
    assert bundle["sections"]["record"][0]["name"] == "Wilhelmina Draycott"
    assert [row["summary"] for row in bundle["sections"]["interactions"]] == ["Renewal call"]


def test_an_erasure_runs_on_a_real_worker_and_finds_no_value_afterwards(workers: Workers, olivia: Any) -> None:
    customer = CustomerFactory.create(
        name="Cornelius Abernethy", emails=["c@abernethy.example"], phones=["0117 496 0222"]
    )
    other = CustomerFactory.create(name="Unrelated Person", emails=["u@unrelated.example"], phones=["0117 496 0333"])
    Customer.objects.filter(pk=other.pk).update(notes="Knows Cornelius Abernethy.")
    created = subject_request_create(actor=olivia, kind="erasure", subject_type="customer", subject_id=customer.pk)
    workers.start()
    workers.wait_for("the erasure to finish", lambda: _status(created.pk) in FINAL)
    created.refresh_from_db()
    assert created.status == RequestStatus.DONE, created.error
    assert created.values_found == 0 and created.verification["tables"]["customers_customer"] == 0
    assert not Customer.objects.filter(pk=customer.pk).exists()
    assert Customer.objects.get(pk=other.pk).notes == "Knows [erased]."
