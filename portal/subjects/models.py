"""Data-subject requests: a copy of everything the portal holds about a person (access), or its erasure.

A request names its subject by type and id only (no foreign key: the record of an erasure outlives the customer
it erased) and stores counts, table names and ids, never the person's values.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class RequestKind(models.TextChoices):
    ACCESS = "access", "Access (a copy of their data)"
    ERASURE = "erasure", "Erasure"


class SubjectType(models.TextChoices):
    CUSTOMER = "customer", "Customer"
    USER = "user", "Staff member"


class RequestStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class SubjectRequest(models.Model):
    kind = models.CharField(max_length=16, choices=RequestKind.choices)
    subject_type = models.CharField(max_length=16, choices=SubjectType.choices)
    subject_id = models.PositiveBigIntegerField()
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="subject_requests"
    )
    reason = models.TextField(blank=True)  # shown to the requester; the trail keeps its keyed hash only
    status = models.CharField(max_length=16, choices=RequestStatus.choices, default=RequestStatus.QUEUED)
    phase = models.CharField(max_length=32, blank=True)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=list, blank=True)  # [{"phase": name, "counts": {what: count}}], in order
    # erasure: {"tables": {table: rows still holding a value}, "values_found": n, "tables_checked": n, ...}
    verification = models.JSONField(default=dict, blank=True)
    values_found = models.IntegerField(null=True, blank=True)
    documents_for_review = models.JSONField(default=list, blank=True)  # [{document_id, knowledge_base_id, chunks}]
    file_name = models.CharField(max_length=200, blank=True)
    file_size = models.PositiveBigIntegerField(default=0)
    expires_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)  # renewed while a worker runs it (portal.core.jobs)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        permissions = [("handle_subjectrequest", "Handle data-subject requests (access and erasure) for anyone")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} request #{self.pk} for {self.subject_type} #{self.subject_id}"

    @property
    def subject_label(self) -> str:
        return f"{self.get_subject_type_display().lower()} #{self.subject_id}"

    @property
    def percent(self) -> int:
        if self.status == RequestStatus.DONE:
            return 100
        return int(100 * self.done / self.total) if self.total else 0

    @property
    def running(self) -> bool:
        return self.status in {RequestStatus.QUEUED, RequestStatus.RUNNING}

    @property
    def downloadable(self) -> bool:
        return self.kind == RequestKind.ACCESS and self.status == RequestStatus.DONE and bool(self.file_name)
