"""Retention policies (versioned like egress policies), legal holds and the runs of the retention job."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from portal.core.versioning import PublishedVersion


class RetentionPolicyVersion(PublishedVersion):
    """One published retention policy: {kind: days or null}. Never changed after publication."""

    immutable_message = "A published retention policy cannot be changed; publish a new one."

    periods = models.JSONField()

    class Meta(PublishedVersion.Meta):
        permissions = [("manage_retention", "Publish retention policies and start retention runs")]

    def __str__(self) -> str:
        return f"Retention policy version {self.number}"


class HoldSubject(models.TextChoices):
    CUSTOMER = "customer", "Customer"
    USER = "user", "Staff member"
    CONVERSATION = "conversation", "Conversation"


class LegalHold(models.Model):
    """While a hold is in force nothing it covers is deleted: not by retention, not by erasure, not by hand."""

    subject = models.CharField(max_length=16, choices=HoldSubject.choices)
    # The id of the customer, user or conversation: no foreign key, so the record of a lifted hold outlives it.
    subject_id = models.PositiveBigIntegerField()
    reason = models.TextField()
    placed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    placed_at = models.DateTimeField(default=timezone.now)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lifted_at = models.DateTimeField(null=True, blank=True)
    lift_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-placed_at"]
        permissions = [("manage_legalhold", "Place and lift legal holds")]
        indexes = [models.Index(fields=["subject", "subject_id"], condition=models.Q(lifted_at__isnull=True),
                                name="legalhold_in_force")]  # fmt: skip

    def __str__(self) -> str:
        return f"Legal hold #{self.pk} on {self.subject}"

    @property
    def active(self) -> bool:
        return self.lifted_at is None


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class RetentionRun(models.Model):
    """One pass of the retention job: what it deleted per kind, in how many batches."""

    policy_version = models.ForeignKey(RetentionPolicyVersion, null=True, on_delete=models.SET_NULL, related_name="+")
    trigger = models.CharField(max_length=16, default="schedule")  # schedule | manual
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    deleted = models.JSONField(default=dict, blank=True)  # {kind: rows deleted}
    batches = models.PositiveIntegerField(default=0)
    held_back = models.JSONField(default=dict, blank=True)  # {kind: rows due but under a legal hold}
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Retention run #{self.pk}"
