"""What the assistant has learned about the business, its customers and its people."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import Q
from django.urls import reverse
from pgvector.django import HnswIndex, VectorField

EMBEDDING_DIMENSION = 384


class Kind(models.TextChoices):
    FACT = "fact", "Fact"
    PREFERENCE = "preference", "Preference"
    PROCEDURE = "procedure", "Procedure"
    DECISION = "decision", "Decision"


class Scope(models.TextChoices):
    ORGANISATION = "organisation", "Organisation"
    ROLE = "role", "Role"
    CUSTOMER = "customer", "Customer"
    USER = "user", "Personal"


class Status(models.TextChoices):
    PROPOSED = "proposed", "Proposed"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    ARCHIVED = "archived", "Archived"


class Source(models.TextChoices):
    CONVERSATION = "conversation", "Conversation"
    STAFF = "staff", "Staff member"
    IMPORT = "import", "Import"


class Sensitivity(models.TextChoices):
    """The same classes as knowledge bases; the egress gate treats a memory like a passage of that class."""

    PUBLIC = "public", "Public"
    INTERNAL = "internal", "Internal"
    CONFIDENTIAL = "confidential", "Confidential"
    LOCAL_ONLY = "local_only", "Local only (never sent to a cloud model)"


class MemoryItem(models.Model):
    text = models.TextField()
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.FACT)
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.ORGANISATION)
    scope_role = models.ForeignKey(
        "auth.Group", null=True, blank=True, on_delete=models.CASCADE, related_name="+", verbose_name="role"
    )
    scope_customer = models.ForeignKey(
        "customers.Customer",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="memories",
        verbose_name="customer",
    )
    scope_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="personal_memories",
        verbose_name="person",
    )
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.STAFF)
    # The assistant message it came from (portal.assistant), kept as plain ids so memory never depends on
    # conversations being kept.
    source_message_id = models.PositiveBigIntegerField(null=True, blank=True)
    source_conversation_id = models.PositiveBigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROPOSED, db_index=True)
    sensitivity = models.CharField(max_length=16, choices=Sensitivity.choices, default=Sensitivity.INTERNAL)
    embedding = VectorField(dimensions=EMBEDDING_DIMENSION, null=True, blank=True)
    search_vector = models.GeneratedField(
        expression=SearchVector("text", config="english"), output_field=SearchVectorField(), db_persist=True
    )
    # Existing memories this one may repeat or contradict: [{"memory_id", "relation", "score", "reason"}]
    flags = models.JSONField(default=list, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    use_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-pk"]
        permissions = [("review_memoryitem", "Can approve, edit and reject proposed memories")]
        indexes = [
            HnswIndex(
                name="memory_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            GinIndex(fields=["search_vector"], name="memory_search_gin"),
            models.Index(fields=["status", "scope"]),
        ]
        constraints = [
            models.CheckConstraint(
                name="memory_scope_target_matches",
                condition=(
                    Q(
                        scope="organisation",
                        scope_role__isnull=True,
                        scope_customer__isnull=True,
                        scope_user__isnull=True,
                    )
                    | Q(scope="role", scope_role__isnull=False, scope_customer__isnull=True, scope_user__isnull=True)
                    | Q(
                        scope="customer", scope_role__isnull=True, scope_customer__isnull=False, scope_user__isnull=True
                    )
                    | Q(scope="user", scope_role__isnull=True, scope_customer__isnull=True, scope_user__isnull=False)
                ),
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("memory:memory_detail", args=[self.pk])

    @property
    def scope_target_label(self) -> str:
        if self.scope == Scope.ROLE and self.scope_role is not None:
            return self.scope_role.name
        if self.scope == Scope.CUSTOMER and self.scope_customer is not None:
            return self.scope_customer.name
        if self.scope == Scope.USER and self.scope_user is not None:
            return self.scope_user.get_full_name() or self.scope_user.get_username()
        return "everyone"

    def scope_target_id(self) -> int | None:
        return self.scope_role_id or self.scope_customer_id or self.scope_user_id


class LearningRun(models.Model):
    """One pass of the learning task over a conversation up to one message (makes the task idempotent)."""

    conversation_id = models.PositiveBigIntegerField()
    last_message_id = models.PositiveBigIntegerField()
    proposed = models.PositiveSmallIntegerField(default=0)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation_id", "last_message_id"], name="memory_learning_once")
        ]

    def __str__(self) -> str:
        return f"learning conversation {self.conversation_id} up to {self.last_message_id}"
