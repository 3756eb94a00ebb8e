"""Any write to the catalog or the task tiers moves the configuration generation (portal/core/config_cache.py)."""

from django.db import migrations

from portal.core.config_cache import trigger_sql

TABLES = ("routing_catalogmodel", "routing_tasktier")


class Migration(migrations.Migration):
    dependencies = [("routing", "0002_default_task_tiers"), ("core", "0002_config_generation")]

    operations = [migrations.RunSQL(trigger_sql(table)[0], trigger_sql(table)[1]) for table in TABLES]
