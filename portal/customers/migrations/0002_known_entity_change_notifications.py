"""A committed write to the customers or their interactions tells every process that the known-entity
dictionary may have changed (the trigger function is governance's, migration 0007)."""

from django.db import migrations

from governance.known_entities import change_trigger_sql

TABLES = ("customers_customer", "customers_interaction")


class Migration(migrations.Migration):
    dependencies = [("customers", "0001_initial"), ("governance", "0007_known_entity_change_notifications")]

    operations = [migrations.RunSQL(*change_trigger_sql(table)) for table in TABLES]
