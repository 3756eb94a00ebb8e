"""Any write to the published policy versions moves the configuration generation (portal/core/config_cache.py)."""

from django.db import migrations

from portal.core.config_cache import trigger_sql

TABLES = ("governance_policyversion",)


class Migration(migrations.Migration):
    dependencies = [("governance", "0005_term_list_date_and_account_classes"), ("core", "0002_config_generation")]

    operations = [migrations.RunSQL(trigger_sql(table)[0], trigger_sql(table)[1]) for table in TABLES]
