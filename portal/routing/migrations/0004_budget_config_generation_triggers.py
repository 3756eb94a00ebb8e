"""Budgets are kept per process too (portal/core/config_cache.py): any write to a budget, or to a role (a
role's budget counts the spending recorded under its name), moves the configuration generation."""

from django.db import migrations

from portal.core.config_cache import trigger_sql

TABLES = ("routing_budget", "auth_group")


class Migration(migrations.Migration):
    dependencies = [("routing", "0003_config_generation_triggers"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunSQL(trigger_sql(table)[0], trigger_sql(table)[1]) for table in TABLES]
