from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.urls import reverse


class Tier(models.TextChoices):
    STANDARD = "standard", "Standard"
    PRIORITY = "priority", "Priority"
    KEY_ACCOUNT = "key", "Key account"


class Customer(models.Model):
    """One customer of the business, kept only on this server.

    `restricted` records are visible to their owner, to people given the object permission
    (django-guardian, per user or per role) and to roles allowed to see every customer.
    """

    name = models.CharField(max_length=200)
    organisation = models.CharField(max_length=200, blank=True)
    emails = ArrayField(models.CharField(max_length=254), default=list, blank=True)
    phones = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    postal_address = models.TextField(blank=True)
    account_numbers = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.STANDARD)
    notes = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_customers"
    )
    restricted = models.BooleanField(
        default=False, help_text="Only the owner and people given access to this record may see it."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "pk"]
        permissions = [
            ("view_all_customers", "Can see every customer, restricted ones included"),
            ("import_customer", "Can import customers from CSV"),
            ("export_customer", "Can export customers to CSV"),
        ]
        indexes = [
            models.Index(fields=["name"]),
            GinIndex(fields=["emails"], name="customer_emails_gin"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("customers:customer_detail", args=[self.pk])


class Channel(models.TextChoices):
    EMAIL = "email", "E-mail"
    PHONE = "phone", "Phone call"
    MEETING = "meeting", "Meeting"
    CHAT = "chat", "Chat"
    LETTER = "letter", "Letter"
    OTHER = "other", "Other"


class Interaction(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="interactions")
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.EMAIL)
    occurred_at = models.DateTimeField()
    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    summary = models.CharField(max_length=300)
    full_text = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-pk"]
        indexes = [models.Index(fields=["customer", "-occurred_at"])]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} {self.occurred_at:%Y-%m-%d}: {self.summary}"
