from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


class ParameterVersion(models.Model):
    """One saved set of operational parameters ({name: value}, only those set on the screen). Never changed
    after it is saved: a change, or going back to an earlier version, saves a new one."""

    number = models.PositiveIntegerField(unique=True)
    values = models.JSONField(default=dict, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    diff = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-number"]
        permissions = [("manage_parameters", "Change the operational parameters on the Settings screen")]

    def __str__(self) -> str:
        return f"Settings version {self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and ParameterVersion.objects.filter(pk=self.pk).exists():
            raise ValueError("A saved settings version cannot be changed; save a new one.")
        super().save(*args, **kwargs)

    @property
    def changes(self) -> list[dict[str, str]]:
        """The diff as the history shows it: a value not set on the screen reads "default"."""
        from portal.core.parameters import BY_NAME, value_text

        shown = []
        for change in self.diff:
            parameter = BY_NAME.get(change["name"])
            if parameter is None:  # a parameter that no longer exists
                shown.append({"label": change.get("label", change["name"]), "before": "", "after": ""})
                continue
            shown.append({"label": parameter.label, "before": value_text(parameter, change["before"], empty="default"),
                          "after": value_text(parameter, change["after"], empty="default")})  # fmt: skip
        return shown
