"""Local models trained on the business's own data: the registry, training runs, labels and outputs.

A `ModelVersion` is one trained model: what it is for, the data it saw, its held-out metrics (and the
active model's on the same split), who trained it, and its state. Its weights are a skops file (no
pickle) under ML_MODEL_DIR whose SHA-256 is kept here and checked whenever the file is loaded.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Purpose(models.TextChoices):
    TASK_ROUTER = "task_router", "Task router"
    SENSITIVITY = "sensitivity", "Sensitivity classifier"
    INJECTION = "injection", "Prompt-injection detector"
    CUSTOMER_CHURN = "customer_churn", "Customer churn risk"
    CUSTOMER_NEXT_CHANNEL = "customer_next_channel", "Customer's next channel"
    RETRIEVAL_RANKER = "retrieval_ranker", "Retrieval ranker"


CUSTOMER_PURPOSES = (Purpose.CUSTOMER_CHURN, Purpose.CUSTOMER_NEXT_CHANNEL)


class ModelState(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"


class ModelVersion(models.Model):
    purpose = models.CharField(max_length=32, choices=Purpose.choices)
    version = models.PositiveIntegerField()
    # The knowledge base a retrieval ranker was trained on (each base has its own; empty for other purposes).
    knowledge_base = models.ForeignKey(
        "knowledge.KnowledgeBase", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    state = models.CharField(max_length=16, choices=ModelState.choices, default=ModelState.CANDIDATE)
    algorithm = models.CharField(max_length=200, blank=True)
    file_name = models.CharField(max_length=200)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.PositiveBigIntegerField(default=0)
    # counts, label distribution, date range, where the examples came from (no example text)
    training_data = models.JSONField(default=dict, blank=True)
    # held-out metrics of this model and of the baseline (and of the model active at training time) on
    # the same split
    metrics = models.JSONField(default=dict, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    trained_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    training_seconds = models.FloatField(default=0)
    activated_at = models.DateTimeField(null=True, blank=True)
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    retired_at = models.DateTimeField(null=True, blank=True)
    retired_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # why the file could not be used (hash mismatch, unreadable); the baseline answers meanwhile
    load_error = models.TextField(blank=True)
    load_error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["purpose", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["purpose", "version"], name="ml_model_version_unique"),
            models.UniqueConstraint(
                fields=["purpose", "knowledge_base"],
                condition=models.Q(state="active"),
                nulls_distinct=False,
                name="ml_one_active_model_per_purpose",
            ),
        ]
        permissions = [
            ("train_model", "Can train local models"),
            ("activate_model", "Can activate and retire local models"),
            ("relabel_questions", "Can correct the task type of questions"),
            ("review_sensitivity", "Can review sensitivity and injection flags"),
        ]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} v{self.version} ({self.state})"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class TrainingRun(models.Model):
    purpose = models.CharField(max_length=32, choices=Purpose.choices)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)  # percent
    stage = models.CharField(max_length=200, blank=True)
    message = models.TextField(blank=True)  # why it failed, or "too few labels: N more needed"
    parameters = models.JSONField(default=dict, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_runs"
    )

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"training run {self.pk} ({self.purpose}, {self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in {RunStatus.DONE, RunStatus.FAILED}


class LabelSource(models.TextChoices):
    RELABEL = "relabel", "Corrected by an administrator"
    DEMO = "demo", "Demo examples"


class TaskLabel(models.Model):
    """A question's task type as a person said it should be (relabels), or a shipped example (demo)."""

    message = models.OneToOneField(
        "assistant.Message", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    text = models.TextField(blank=True)  # only for examples that are no stored question (demo)
    task_type = models.CharField(max_length=20)
    source = models.CharField(max_length=16, choices=LabelSource.choices, default=LabelSource.RELABEL)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.task_type} ({self.source})"


class FlagKind(models.TextChoices):
    SENSITIVITY = "sensitivity", "More sensitive than its knowledge base"
    INJECTION = "injection", "Possible prompt injection"


class FlagStatus(models.TextChoices):
    OPEN = "open", "Waiting for review"
    CONFIRMED = "confirmed", "Confirmed"
    DISMISSED = "dismissed", "Dismissed"


class PassageFlag(models.Model):
    """A passage a local model flagged, for governance officers; their verdict is a training label."""

    chunk = models.ForeignKey("knowledge.Chunk", on_delete=models.CASCADE, related_name="+")
    document = models.ForeignKey("knowledge.Document", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=FlagKind.choices)
    base_label = models.CharField(max_length=20, blank=True)  # the knowledge base's label at the time
    predicted_label = models.CharField(max_length=20, blank=True)
    probability = models.FloatField(default=0)
    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=16, choices=FlagStatus.choices, default=FlagStatus.OPEN)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["chunk", "kind"], name="ml_one_flag_per_chunk_and_kind")]
        indexes = [models.Index(fields=["kind", "status"])]

    def __str__(self) -> str:
        return f"{self.kind} flag on chunk {self.chunk_id} ({self.status})"


class DocumentSuggestion(models.Model):
    """The sensitivity model's label for a whole document; never lower than its knowledge base's."""

    document = models.OneToOneField("knowledge.Document", on_delete=models.CASCADE, related_name="+")
    base_label = models.CharField(max_length=20)
    suggested_label = models.CharField(max_length=20)
    probability = models.FloatField(default=0)
    flagged_passages = models.PositiveIntegerField(default=0)
    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"document {self.document_id}: {self.suggested_label}"


class CustomerPrediction(models.Model):
    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    purpose = models.CharField(max_length=32, choices=Purpose.choices)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    label = models.CharField(max_length=40)
    probability = models.FloatField()
    reasons = models.JSONField(default=list, blank=True)  # [{"feature", "text", "weight"}], strongest first
    created_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["customer", "purpose"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "purpose"], name="ml_one_prediction_per_customer_and_purpose")
        ]

    def __str__(self) -> str:
        return f"{self.purpose} for customer {self.customer_id}: {self.label}"
