from __future__ import annotations

from django.contrib.auth.models import Group
from django.db import models


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
