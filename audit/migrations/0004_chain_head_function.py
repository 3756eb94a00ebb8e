"""One round trip to take the chain lock and read the head (see audit.services.audit)."""

from __future__ import annotations

from django.db import migrations

# VOLATILE + READ COMMITTED: the SELECT inside takes a fresh snapshot after the lock is granted, so it sees
# the event committed by the previous holder (a single `SELECT lock, head` statement would not).
CREATE = """
CREATE OR REPLACE FUNCTION audit_chain_lock_head(lock_key bigint, OUT head_seq bigint, OUT head_hash varchar)
RETURNS record AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    SELECT event.seq, event.hash INTO head_seq, head_hash
        FROM audit_auditevent AS event ORDER BY event.seq DESC LIMIT 1;
END;
$$ LANGUAGE plpgsql VOLATILE;
"""

DROP = "DROP FUNCTION IF EXISTS audit_chain_lock_head(bigint);"


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_export")]
    operations = [migrations.RunSQL(CREATE, DROP)]
