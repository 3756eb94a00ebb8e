"""The model catalog, the task-type map, budgets and the usage ledger."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, URLValidator
from django.db import models

from governance.gate import Destination

ERROR_BAD_MODEL_STRING = "Use a litellm model string with a provider prefix, e.g. anthropic/claude-sonnet-4-5."
ERROR_KEY_LOOKS_LIKE_A_SECRET = "Enter the NAME of the environment variable that holds the key, not the key itself."
ERROR_BUDGET_SCOPE = "A budget applies to exactly one role or one user."


class Tier(models.TextChoices):
    ECONOMY = "economy", "Economy"
    STANDARD = "standard", "Standard"
    PREMIUM = "premium", "Premium"
    RESEARCH = "research", "Research"


class TaskType(models.TextChoices):
    ROUTINE = "routine", "Routine answer"
    SUMMARIZE = "summarize", "Summarize"
    DRAFT = "draft", "Draft"
    ANALYZE = "analyze", "Analyze / complex reasoning"
    RESEARCH = "research", "Research"


class CatalogModel(models.Model):
    """One model deployment a prompt may be sent to. Switching providers is editing these rows."""

    display_name = models.CharField(max_length=100)
    litellm_model = models.CharField(
        max_length=200, help_text="litellm model string: anthropic/…, openai/…, gemini/…, or openai/<name> + API base"
    )
    api_base = models.CharField(
        "API base",
        max_length=300,
        blank=True,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="Only for OpenAI-compatible endpoints or proxies, e.g. https://llm.example.com/v1",
    )
    api_key_env = models.CharField(
        "API key variable",
        max_length=100,
        blank=True,
        help_text="Name of the environment variable holding the key (e.g. ANTHROPIC_API_KEY). Never the key.",
    )
    tier = models.CharField(max_length=20, choices=Tier.choices, default=Tier.STANDARD)
    zero_data_retention = models.BooleanField(default=False)
    region = models.CharField(max_length=40, blank=True, help_text="e.g. eu, us")
    input_price_per_million = models.DecimalField(
        max_digits=10, decimal_places=4, null=True, blank=True, validators=[MinValueValidator(Decimal(0))],
        help_text="Overrides litellm's price map (currency per 1M input tokens).",
    )  # fmt: skip
    output_price_per_million = models.DecimalField(
        max_digits=10, decimal_places=4, null=True, blank=True, validators=[MinValueValidator(Decimal(0))],
        help_text="Overrides litellm's price map (currency per 1M output tokens).",
    )  # fmt: skip
    timeout_seconds = models.FloatField(default=60.0, validators=[MinValueValidator(0.05)])
    enabled = models.BooleanField(default=True)
    order = models.PositiveIntegerField(default=100, help_text="Lower first within a tier.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tier", "order", "id"]
        verbose_name = "model"

    def __str__(self) -> str:
        return f"{self.display_name} ({self.litellm_model})"

    @property
    def key(self) -> str:
        return f"model:{self.pk}"

    @property
    def provider(self) -> str:
        prefix = self.litellm_model.split("/", 1)[0]
        return f"{prefix}-compatible" if self.api_base and prefix == "openai" else prefix

    def destination(self) -> Destination:
        return Destination(
            key=self.key,
            provider=self.provider,
            is_local=False,
            zero_data_retention=self.zero_data_retention,
            region=self.region,
        )

    def clean(self) -> None:
        if "/" not in self.litellm_model.strip("/"):
            raise ValidationError({"litellm_model": ERROR_BAD_MODEL_STRING})
        name = self.api_key_env
        if name and (not name.replace("_", "").isalnum() or not name[0].isalpha() or name != name.upper()):
            raise ValidationError({"api_key_env": ERROR_KEY_LOOKS_LIKE_A_SECRET})


class TaskTier(models.Model):
    """Which tier answers which task type (editable; defaults come from a data migration)."""

    task_type = models.CharField(max_length=20, choices=TaskType.choices, unique=True)
    tier = models.CharField(max_length=20, choices=Tier.choices)

    class Meta:
        ordering = ["task_type"]
        verbose_name = "task type → tier"
        verbose_name_plural = "task types → tiers"

    def __str__(self) -> str:
        return f"{self.task_type} → {self.tier}"


class Budget(models.Model):
    class Period(models.TextChoices):
        DAY = "day", "Per day"
        MONTH = "month", "Per month"

    class Action(models.TextChoices):
        DOWNGRADE = "downgrade", "Downgrade to a cheaper tier"
        REFUSE = "refuse", "Refuse"

    role = models.ForeignKey(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    period = models.CharField(max_length=10, choices=Period.choices, default=Period.MONTH)
    limit = models.DecimalField(max_digits=12, decimal_places=4, validators=[MinValueValidator(Decimal(0))])
    action = models.CharField(max_length=10, choices=Action.choices, default=Action.DOWNGRADE)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["role__name", "user__username", "period"]

    def __str__(self) -> str:
        who = f"role {self.role}" if self.role_id else f"user {self.user}"
        return f"{who}: {self.limit} {self.period}"

    def clean(self) -> None:
        if bool(self.role_id) == bool(self.user_id):
            raise ValidationError(ERROR_BUDGET_SCOPE)


class Usage(models.Model):
    """One call attempt to one model (success or failure)."""

    created_at = models.DateTimeField(db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150, blank=True)
    roles = models.JSONField(default=list, blank=True)
    assistant_profile_id = models.BigIntegerField(null=True, blank=True)
    task_type = models.CharField(max_length=20, blank=True)
    tier = models.CharField(max_length=20, blank=True)
    model_key = models.CharField(max_length=40)
    model_name = models.CharField(max_length=200)
    provider = models.CharField(max_length=60)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal(0))
    cost_source = models.CharField(max_length=20, blank=True)  # "catalog", "litellm", "local", "unknown"
    first_token_ms = models.FloatField(null=True, blank=True)
    total_ms = models.FloatField(default=0)
    outcome = models.CharField(max_length=10)  # "success" | "error"
    error_class = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "created_at"])]
        verbose_name_plural = "usage"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.username} {self.model_name} {self.outcome}"
