from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.utils import timezone

from governance.classes import DATA_CLASSES
from portal.core.versioning import PublishedVersion


class Role(models.Model):
    """A role of the portal: one Django Group plus what it is for."""

    group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="role")
    description = models.TextField()
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "group__name"]
        permissions = [
            ("manage_users", "Can manage users and their roles"),
            ("manage_policies", "Can edit and publish governance policies"),
            ("use_assistant", "Can ask the assistant"),
        ]

    def __str__(self) -> str:
        return self.group.name

    @property
    def name(self) -> str:
        return self.group.name


class PolicyVersion(PublishedVersion):
    """One published egress policy. Never changed after publication; restoring publishes a copy."""

    immutable_message = "A published policy version cannot be changed; publish a new one."

    document = models.JSONField()
    restored_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    diff = models.JSONField(default=list, blank=True, help_text="Readable changes against the previous version.")

    def __str__(self) -> str:
        return f"Policy version {self.number}"


class PolicyDraft(models.Model):
    """The policy being edited (one shared draft): nothing in it applies until it is published."""

    document = models.JSONField()
    based_on = models.ForeignKey(PolicyVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Policy draft (based on {self.based_on})"


class TermList(models.Model):
    """Words an officer wants treated as a data class wherever they appear (project names, VIPs, ...)."""

    name = models.CharField(max_length=100, unique=True)
    data_class = models.CharField(max_length=32, choices=[(c, c) for c in DATA_CLASSES])
    description = models.TextField(blank=True)
    terms = models.TextField(blank=True, help_text="One term per line.")
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def term_values(self) -> list[str]:
        return [line.strip() for line in self.terms.splitlines() if line.strip()]


class ConversationVault(models.Model):
    """The placeholders of one conversation and the values behind them, encrypted (Fernet) at rest.

    The key comes from settings (GOVERNANCE_VAULT_KEY), never from the database.
    """

    conversation_key = models.CharField(max_length=200, unique=True)
    ciphertext = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Vault of {self.conversation_key}"
