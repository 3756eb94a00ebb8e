"""Conversation.customer becomes a real foreign key (SET_NULL), instead of a bare id "when that app is
installed": deleting a customer used to leave conversations pointing at nothing, and every later question
in them failed. Ids that already point at nothing are cleared first."""

from __future__ import annotations

from typing import Any

import django.db.models.deletion
from django.db import migrations, models


def clear_dangling_customer_ids(apps: Any, schema_editor: Any) -> None:
    Conversation = apps.get_model("assistant", "Conversation")
    Customer = apps.get_model("customers", "Customer")
    alias = schema_editor.connection.alias
    existing = Customer.objects.using(alias).values("pk")
    Conversation.objects.using(alias).exclude(customer_id=None).exclude(customer_id__in=existing).update(
        customer_id=None
    )


class Migration(migrations.Migration):
    dependencies = [
        ("assistant", "0001_initial"),
        ("customers", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(clear_dangling_customer_ids, migrations.RunPython.noop),
        migrations.RenameField(model_name="conversation", old_name="customer_id", new_name="customer"),
        migrations.AlterField(
            model_name="conversation",
            name="customer",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="customers.customer",
            ),
        ),
    ]
