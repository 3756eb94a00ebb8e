"""Workflows: a named definition with immutable published versions, its runs and each run's steps."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.utils import timezone

ERROR_VERSION_IMMUTABLE = "A published workflow version cannot be changed; publish a new one."


class Workflow(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.CharField(max_length=500, blank=True)
    current = models.ForeignKey("WorkflowVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        # who may run a workflow is a per-workflow guardian permission (users or roles)
        permissions = [("run_workflow", "Can run the workflow")]

    def __str__(self) -> str:
        return self.name


class WorkflowVersion(models.Model):
    """One published definition. Never changed after publication; restoring publishes a copy."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    definition = models.JSONField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    restored_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=20, default="editor")  # editor | import | restore | demo
    diff = models.JSONField(default=list, blank=True, help_text="Readable changes against the previous version.")

    class Meta:
        ordering = ["workflow", "-number"]
        constraints = [models.UniqueConstraint(fields=["workflow", "number"], name="workflow_version_number")]

    def __str__(self) -> str:
        return f"{self.workflow} v{self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and WorkflowVersion.objects.filter(pk=self.pk).exists():
            raise ValueError(ERROR_VERSION_IMMUTABLE)
        super().save(*args, **kwargs)


class Schedule(models.Model):
    """When a schedule trigger of the current version fires next (kept in step with publication)."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="schedules")
    version = models.ForeignKey(WorkflowVersion, on_delete=models.CASCADE, related_name="+")
    trigger_index = models.PositiveSmallIntegerField()
    cron = models.CharField(max_length=100)
    timezone = models.CharField(max_length=64, default="UTC")
    next_at = models.DateTimeField(db_index=True)
    last_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.workflow} {self.cron} ({self.timezone})"


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    WAITING = "waiting_for_approval", "Waiting for approval"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    SKIPPED = "skipped", "Skipped"  # a step of an item that failed (for-each goes on with the next)


FINISHED = (Status.DONE, Status.FAILED, Status.CANCELLED)


class Run(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="runs")
    version = models.ForeignKey(WorkflowVersion, on_delete=models.PROTECT, related_name="runs")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    trigger = models.CharField(max_length=20, default="manual")  # manual | schedule | event
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.PENDING, db_index=True)
    inputs = models.JSONField(default=dict, blank=True)
    # where the run stands: program counter, for-each frames, variables; `seq` numbers each advance so that a
    # duplicate or outdated task message does nothing
    state = models.JSONField(default=dict, blank=True)
    seq = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    requeues = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Run {self.pk} of {self.workflow_id}"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class StepRun(models.Model):
    """One execution of one step (inside a for-each: of one step for one item; the key says which)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    key = models.CharField(max_length=200)  # step id, and [n] per enclosing for-each item
    step_id = models.CharField(max_length=40)
    kind = models.CharField(max_length=20)
    position = models.PositiveIntegerField(default=0)  # order of creation within the run
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)  # claims: a takeover after a crash counts too
    failures = models.PositiveSmallIntegerField(default=0)
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(default=dict, blank=True)
    manifest = models.JSONField(default=dict, blank=True)
    model = models.CharField(max_length=200, blank=True)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    overhead_ms = models.FloatField(null=True, blank=True)  # time in the engine, without the model call
    model_ms = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # approval steps
    approver_role = models.ForeignKey(Group, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    approver_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    deadline = models.DateTimeField(null=True, blank=True, db_index=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="workflow_step_run_key")]
        indexes = [models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"{self.key} of run {self.run_id}"


class Notification(models.Model):
    """A message in the portal for one person (the notify step, approvals waiting)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    text = models.CharField(max_length=2000)
    url = models.CharField(max_length=300, blank=True)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications")
    step_key = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["user", "run", "step_key"], name="workflow_notification_once")]

    def __str__(self) -> str:
        return f"Notification for {self.user_id}"
