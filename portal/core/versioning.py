"""The shared abstract model of a published configuration version (settings, retention and egress policies).

It lives outside models.py so that apps may build on it without importing another app's models."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


class PublishedVersion(models.Model):
    """A published version of a configuration: numbered, with its author, reason and readable diff against the
    previous one. Never changed after it is saved: a change, or going back to an earlier version, saves a new one.
    The subclass adds what is versioned and says in `immutable_message` how to change it instead."""

    immutable_message = "A published version cannot be changed; publish a new one."

    number = models.PositiveIntegerField(unique=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    diff = models.JSONField(default=list, blank=True)

    class Meta:
        abstract = True
        ordering = ["-number"]

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and type(self)._default_manager.filter(pk=self.pk).exists():
            raise ValueError(self.immutable_message)
        super().save(*args, **kwargs)
