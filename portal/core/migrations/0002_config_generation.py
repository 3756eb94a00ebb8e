"""The configuration generation (see portal/core/config_cache.py): a sequence, its one-row table and the
trigger function that the configuration tables' statement triggers call."""

from django.db import migrations

FORWARD = (
    "CREATE SEQUENCE core_config_generation_seq",
    "CREATE TABLE core_configgeneration (id smallint PRIMARY KEY CHECK (id = 1), value bigint NOT NULL)",
    "INSERT INTO core_configgeneration (id, value) VALUES (1, nextval('core_config_generation_seq'))",
    """
    CREATE FUNCTION core_config_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE core_configgeneration SET value = nextval('core_config_generation_seq') WHERE id = 1;
        RETURN NULL;
    END
    $$
    """,
)
REVERSE = (
    "DROP FUNCTION IF EXISTS core_config_generation_bump() CASCADE",
    "DROP TABLE IF EXISTS core_configgeneration",
    "DROP SEQUENCE IF EXISTS core_config_generation_seq",
)


class Migration(migrations.Migration):
    dependencies = [("core", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
