"""A committed write to a known-entity source tells every process (governance/known_entities.py): the trigger
function that notifies the change channel, and its statement triggers on the users and the term lists (the
customers app adds its own tables)."""

from django.db import migrations

from governance.known_entities import CHANGE_FUNCTION, CHANGE_FUNCTION_SQL, change_trigger_sql

TABLES = ("auth_user", "governance_termlist")


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0006_config_generation_triggers"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunSQL(CHANGE_FUNCTION_SQL, f"DROP FUNCTION IF EXISTS {CHANGE_FUNCTION}() CASCADE"),
        *(migrations.RunSQL(*change_trigger_sql(table)) for table in TABLES),
    ]
