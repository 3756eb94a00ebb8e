from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [("auth", "0012_alter_user_first_name_max_length")]

    operations = [
        migrations.CreateModel(
            name="Role",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("description", models.TextField()),
                ("position", models.PositiveSmallIntegerField(default=0)),
                (
                    "group",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE, related_name="role", to="auth.group"
                    ),
                ),
            ],
            options={
                "ordering": ["position", "group__name"],
                "permissions": [
                    ("manage_users", "Can manage users and their roles"),
                    ("manage_policies", "Can edit and publish governance policies"),
                    ("use_assistant", "Can ask the assistant"),
                ],
            },
        ),
    ]
