"""An assistant profile can be marked sensitive: every personal value it sends is at least abstracted."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("assistant", "0002_conversation_customer_foreign_key"),
    ]

    operations = [
        migrations.AddField(
            model_name="assistantprofile",
            name="sensitive",
            field=models.BooleanField(
                default=False,
                help_text=(
                    "Only anonymized or abstracted data leaves: every personal value is at least abstracted (an "
                    "age band, a city, a range, a role or tier) whatever the asking role's policy allows."
                ),
                verbose_name="sensitive operation",
            ),
        ),
    ]
