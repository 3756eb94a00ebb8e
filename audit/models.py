from __future__ import annotations

from django.conf import settings
from django.db import models


class Outcome(models.TextChoices):
    SUCCESS = "success", "Success"
    DENIED = "denied", "Denied"
    FAILURE = "failure", "Failure"
    ERROR = "error", "Error"


class AuditEvent(models.Model):
    """One entry of the append-only, hash-chained audit trail.

    Rows are never updated or deleted: a database trigger rejects UPDATE, DELETE and TRUNCATE.
    The actor is a plain reference (no foreign-key constraint) so removing a user never has to touch
    the trail; the username and roles at the time are copied into the event.
    """

    seq = models.BigIntegerField(unique=True, help_text="Gap-free position in the chain, from 1.")
    created_at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_username = models.CharField(max_length=150, blank=True)
    actor_roles = models.JSONField(default=list)
    action = models.CharField(max_length=100, db_index=True)
    object_type = models.CharField(max_length=100, blank=True, db_index=True)
    object_id = models.CharField(max_length=100, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    details = models.JSONField(default=dict)
    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["seq"]
        permissions = [
            ("review_auditevent", "Can review the audit trail"),
            ("export_auditevent", "Can export the audit trail"),
            ("verify_auditevent", "Can verify the audit chain from the browser"),
        ]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor_username or 'system'}"


class ExportFormat(models.TextChoices):
    CSV = "csv", "CSV"
    JSONL = "jsonl", "JSON Lines"


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Ready"
    FAILED = "failed", "Failed"


class AuditExport(models.Model):
    """A background export of a filtered range of the trail, downloadable by the person who asked for it."""

    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    export_format = models.CharField(max_length=8, choices=ExportFormat.choices)
    filters = models.JSONField(default=dict, blank=True)
    up_to_seq = models.BigIntegerField(help_text="The export covers events up to this position of the chain.")
    total = models.BigIntegerField(default=0)
    done = models.BigIntegerField(default=0)
    status = models.CharField(max_length=8, choices=ExportStatus.choices, default=ExportStatus.QUEUED)
    file_name = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    # Renewed by the running export task (portal.core.jobs); a running export whose heartbeat stopped lost its
    # worker, and the sweep queues it again, at most JOBS_MAX_REQUEUES times.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    requeues = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"export #{self.pk} ({self.export_format}, {self.status})"

    @property
    def percent(self) -> int:
        if self.status == ExportStatus.DONE:
            return 100
        return int(self.done * 100 / self.total) if self.total else 0


class AuditVerification(models.Model):
    """One run of the chain verification (what `manage.py audit_verify` does), asked for from the browser and
    run by a worker; the report is the command's, as JSON (counts, positions, hashes, file names: no content)."""

    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=ExportStatus.choices, default=ExportStatus.QUEUED)
    total = models.BigIntegerField(default=0, help_text="Events in the chain when the run was asked for.")
    done = models.BigIntegerField(default=0)
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"verification #{self.pk} ({self.status})"

    @property
    def running(self) -> bool:
        return self.status in {ExportStatus.QUEUED, ExportStatus.RUNNING}

    @property
    def percent(self) -> int:
        if self.status == ExportStatus.DONE:
            return 100
        return min(100, int(self.done * 100 / self.total)) if self.total else 0
