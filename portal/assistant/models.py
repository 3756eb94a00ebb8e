"""Assistant profiles ("agent settings"), conversations and their messages, all kept locally."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

TASK_TYPE_AUTOMATIC = ""


class TaskType(models.TextChoices):
    AUTOMATIC = TASK_TYPE_AUTOMATIC, "Automatic (classify each question)"
    ROUTINE = "routine", "Routine answer"
    SUMMARIZE = "summarize", "Summarize"
    DRAFT = "draft", "Draft"
    ANALYZE = "analyze", "Analyze / complex reasoning"
    RESEARCH = "research", "Research"


class AssistantProfile(models.Model):
    """How one assistant behaves: instructions, knowledge, routing and who may use it.

    Who may use it is a django-guardian object permission `use_assistantprofile`, granted to roles
    (groups) or single users; the user also needs the global `governance.use_assistant`.
    """

    name = models.CharField(max_length=100, unique=True)
    description = models.CharField(max_length=300, blank=True)
    instructions = models.TextField(blank=True, help_text="Sent as the system message of every question.")
    knowledge_bases = models.ManyToManyField(
        "knowledge.KnowledgeBase",
        blank=True,
        related_name="assistant_profiles",
        help_text="Searched for every question (only those the asking user may read). Empty: no search.",
    )
    all_readable_knowledge = models.BooleanField(
        "every knowledge base the asker may read",
        default=False,
        help_text=(
            "Search every knowledge base the asking user may read whose passages their policy lets reach a "
            "cloud model (new ones included, as soon as they are granted), besides those chosen above. "
            "Confidential and local-only bases are searched only when chosen above."
        ),
    )
    task_type = models.CharField(
        max_length=20,
        choices=TaskType.choices,
        default=TASK_TYPE_AUTOMATIC,
        blank=True,
        help_text="Fixed task type for routing, or automatic classification of each question.",
    )
    temperature = models.FloatField(default=0.2, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)])
    max_tokens = models.PositiveIntegerField(
        "answer length (max tokens)", default=800, validators=[MinValueValidator(16), MaxValueValidator(8000)]
    )
    passages = models.PositiveSmallIntegerField(
        "passages per question", default=6, validators=[MinValueValidator(1), MaxValueValidator(20)]
    )
    sensitive = models.BooleanField(
        "sensitive operation",
        default=False,
        help_text=(
            "Only anonymized or abstracted data leaves: every personal value is at least abstracted (an age band, "
            "a city, a range, a role or tier) whatever the asking role's policy allows."
        ),
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("use_assistantprofile", "Can use this assistant profile")]

    def __str__(self) -> str:
        return self.name


class Conversation(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    profile = models.ForeignKey(AssistantProfile, on_delete=models.PROTECT, related_name="conversations")
    title = models.CharField(max_length=200)
    # The customer record the conversation is about; deleting the record keeps the conversation.
    customer = models.ForeignKey(
        "customers.Customer", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The unlisted knowledge base of the files attached to this conversation, made on the first attachment and
    # searched only by questions in this conversation. The relation points down (knowledge knows nothing of
    # conversations); deleting the conversation deletes the base through conversation_delete / the purge.
    attachments_base = models.OneToOneField(
        "knowledge.KnowledgeBase", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["-updated_at", "-pk"]
        indexes = [models.Index(fields=["owner", "-updated_at"])]

    def __str__(self) -> str:
        return self.title


class MessageRole(models.TextChoices):
    USER = "user", "Question"
    ASSISTANT = "assistant", "Answer"


class MessageStatus(models.TextChoices):
    COMPLETE = "complete", "Complete"
    AWAITING_CONFIRMATION = "awaiting_confirmation", "Waiting for the user to confirm what is sent"
    CANCELLED = "cancelled", "Not sent (cancelled by the user)"
    ERROR = "error", "Error"
    BLOCKED = "blocked", "Blocked by governance"
    STOPPED = "stopped", "Stopped before it was complete"


class Message(models.Model):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=MessageRole.choices)
    status = models.CharField(max_length=24, choices=MessageStatus.choices, default=MessageStatus.COMPLETE)
    # Questions: what the user typed. Answers: the re-identified model output, or the error shown.
    content = models.TextField(blank=True)
    # What the user is told when no (complete) answer could be given: provider fault, block, budget.
    error = models.TextField(blank=True)
    reply_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="answers")
    # Questions: the earlier question this one is an edited copy of (edit and resend keeps both).
    edited_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="edits")
    citations = models.JSONField(default=list, blank=True)
    route = models.JSONField(default=dict, blank=True)
    manifest = models.JSONField(default=dict, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    feedback = models.SmallIntegerField(null=True, blank=True, choices=[(1, "Helpful"), (-1, "Not helpful")])
    feedback_comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["conversation", "created_at"])]

    def __str__(self) -> str:
        return f"{self.role} #{self.pk}"

    @property
    def is_answer(self) -> bool:
        return self.role == MessageRole.ASSISTANT


class CitationOpen(models.Model):
    """A person opened a source an answer cited, from the answer (once per person, answer and source): a signal
    for the retrieval ranker that the passage served the question."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="citation_opens")
    number = models.PositiveSmallIntegerField()
    chunk_id = models.PositiveBigIntegerField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "number", "user"], name="assistant_citation_open_once")
        ]

    def __str__(self) -> str:
        return f"source {self.number} of answer #{self.message_id}"
