from __future__ import annotations

from django.db import models

from portal.core.versioning import PublishedVersion


class ParameterVersion(PublishedVersion):
    """One saved set of operational parameters ({name: value}, only those set on the screen)."""

    immutable_message = "A saved settings version cannot be changed; save a new one."

    values = models.JSONField(default=dict, blank=True)

    class Meta(PublishedVersion.Meta):
        permissions = [("manage_parameters", "Change the operational parameters on the Settings screen")]

    def __str__(self) -> str:
        return f"Settings version {self.number}"

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
