from __future__ import annotations

from typing import Any

from django.db import migrations

DEFAULTS = {
    "routine": "economy",
    "summarize": "economy",
    "draft": "standard",
    "analyze": "premium",
    "research": "research",
}


def add_defaults(apps: Any, schema_editor: Any) -> None:
    TaskTier = apps.get_model("routing", "TaskTier")
    for task_type, tier in DEFAULTS.items():
        TaskTier.objects.get_or_create(task_type=task_type, defaults={"tier": tier})


class Migration(migrations.Migration):
    dependencies = [("routing", "0001_initial")]
    operations = [migrations.RunPython(add_defaults, migrations.RunPython.noop)]
