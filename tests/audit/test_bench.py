from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from audit.models import AuditEvent
from tests.audit.factories import write_events


@pytest.mark.django_db(transaction=True)
def test_the_benchmark_reports_every_figure_and_leaves_the_real_trail_alone() -> None:
    write_events(2)
    before = list(AuditEvent.objects.values_list("seq", "hash"))
    out = StringIO()
    call_command("bench_audit", "--events", "300", "--writes", "16", "--json", stdout=out)
    figures = json.loads(out.getvalue())
    for name in (
        "audit_write_p50_ms_1_writers",
        "audit_write_p95_ms_8_writers",
        "verify_seconds",
        "export_jsonl_events_per_second",
        "export_csv_peak_rss_mb",
    ):
        assert name in figures
    assert figures["events_in_chain"] == 300 + 16 * 3  # the generated events, then 16 writes per writing round
    assert list(AuditEvent.objects.values_list("seq", "hash")) == before
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'audit_bench_scratch'")
        assert cursor.fetchone()[0] == 0
