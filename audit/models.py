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
        ]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor_username or 'system'}"
