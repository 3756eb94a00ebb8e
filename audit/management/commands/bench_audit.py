"""`manage.py bench_audit`: how fast the audit trail is written, verified and exported.

Everything runs against a scratch copy of the audit table: the schema `audit_bench_scratch` in the current
database, created with `CREATE TABLE ... (LIKE audit_auditevent INCLUDING ALL)` plus the same append-only
trigger, put first on the search path of every benchmark connection, and dropped (`DROP SCHEMA ... CASCADE`)
at the end, even on failure. The real trail is never touched. The writes use the real `audit()` (same
advisory lock as the real chain, so run it on a quiet database); the million events are generated with a
valid chain and loaded with COPY. The portal role may not create schemas (audit/hardening.py): on the
embedded server its superuser creates the scratch schema for it; with DATABASE_URL, run it as a role that may.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone

from audit.chain import event_hash, normalise_details
from audit.exports import render_rows
from audit.models import AuditEvent
from audit.selectors import audit_chain_head, audit_chain_verify, audit_export_rows
from audit.services import audit

SCRATCH_SCHEMA = "audit_bench_scratch"
ERROR_NO_SCHEMA = (
    "bench_audit needs a scratch schema, and the role it connects as may not create one (which is how the "
    "portal's role should be): run it on the embedded server, or with a DATABASE_URL whose role has CREATE "
    "on the database ({error})."
)
COPY_COLUMNS = (
    "seq", "created_at", "actor_id", "actor_username", "actor_roles", "action", "object_type", "object_id",
    "outcome", "details", "previous_hash", "hash",
)  # fmt: skip


def _use_scratch() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"SET search_path TO {SCRATCH_SCHEMA}, public")


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class Command(BaseCommand):
    help = "Benchmark audit writes (1 and 8 writers), verification and export, on a scratch copy of the table."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--events", type=int, default=1_000_000, help="events to verify and export")
        parser.add_argument("--writes", type=int, default=400, help="audit writes per concurrency level")
        parser.add_argument("--pace-ms", type=int, default=100, help="pause of each paced writer between events")
        parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        from django.test.utils import override_settings

        # the scratch chain's positions mean nothing to the real one: no checkpoints every N events of it
        with override_settings(AUDIT_CHECKPOINT_EVERY_EVENTS=0):
            self._handle(options)

    def _handle(self, options: dict[str, Any]) -> None:
        figures: dict[str, float | int] = {}
        self._create_scratch()
        try:
            _use_scratch()
            # the floor: one plain INSERT and COMMIT of a similar row, no chain, on the same database
            baseline = self._bench_plain_commits(options["writes"])
            figures["plain_insert_commit_p50_ms"] = round(_percentile(baseline, 0.50), 3)
            figures["plain_insert_commit_p95_ms"] = round(_percentile(baseline, 0.95), 3)
            # back to back (the worst case: every writer queues on the one chain), then paced like real
            # actions that do other work between two events
            for writers, pace_ms, label in ((1, 0, "1_writers"), (8, 0, "8_writers"),
                                            (8, options["pace_ms"], "8_paced_writers")):  # fmt: skip
                started = time.perf_counter()
                latencies = self._bench_writes(writers, options["writes"], pace_ms / 1000)
                elapsed = time.perf_counter() - started
                figures[f"audit_writes_per_second_{label}"] = round(len(latencies) / elapsed)
                figures[f"audit_write_p50_ms_{label}"] = round(_percentile(latencies, 0.50), 3)
                figures[f"audit_write_p95_ms_{label}"] = round(_percentile(latencies, 0.95), 3)
            _use_scratch()
            started = time.perf_counter()
            self._load_events(options["events"])
            figures["generate_and_copy_seconds"] = round(time.perf_counter() - started, 2)
            head_seq, count = audit_chain_head()
            figures["events_in_chain"] = count
            started, cpu_started = time.perf_counter(), time.process_time()
            report = audit_chain_verify()
            figures["verify_seconds"] = round(time.perf_counter() - started, 2)
            figures["verify_cpu_seconds_python"] = round(time.process_time() - cpu_started, 2)
            figures["verify_events_per_second"] = round(report.checked / max(figures["verify_seconds"], 1e-9))
            if not report.intact or report.checked != count:
                raise RuntimeError(f"the generated chain does not verify: {report.first_break}")
            for export_format in ("jsonl", "csv"):
                rate, peak, growth, size = self._bench_export(export_format, head_seq)
                figures[f"export_{export_format}_events_per_second"] = rate
                figures[f"export_{export_format}_peak_rss_mb"] = peak
                figures[f"export_{export_format}_rss_growth_mb"] = growth
                figures[f"export_{export_format}_size_mb"] = size
        finally:
            self._drop_scratch()
        if options["json"]:
            self.stdout.write(json.dumps(figures))
        else:
            for name, value in figures.items():
                self.stdout.write(f"{name}: {value}")

    # ---- scratch table ------------------------------------------------------------------------------
    def _create_scratch(self) -> None:
        table = AuditEvent._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_schema()")
            home = cursor.fetchone()[0]
            self._create_scratch_schema(cursor)
            cursor.execute(f"CREATE TABLE {SCRATCH_SCHEMA}.{table} (LIKE {home}.{table} INCLUDING ALL)")
            cursor.execute(
                f"CREATE TRIGGER audit_event_no_update_delete BEFORE UPDATE OR DELETE ON {SCRATCH_SCHEMA}.{table}"
                f" FOR EACH ROW EXECUTE FUNCTION {home}.audit_event_reject_change()"
            )

    def _create_scratch_schema(self, cursor: Any) -> None:
        if settings.DATABASE_SUPERUSER:  # the embedded server: its superuser makes the schema, owned by us
            from audit.protection import superuser_connection

            cursor.execute("SELECT current_user")
            role = cursor.fetchone()[0]
            with superuser_connection() as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {SCRATCH_SCHEMA} CASCADE")
                conn.execute(f'CREATE SCHEMA {SCRATCH_SCHEMA} AUTHORIZATION "{role}"')
            return
        try:
            with transaction.atomic():
                cursor.execute(f"DROP SCHEMA IF EXISTS {SCRATCH_SCHEMA} CASCADE")
                cursor.execute(f"CREATE SCHEMA {SCRATCH_SCHEMA}")
        except DatabaseError as error:
            raise CommandError(ERROR_NO_SCHEMA.format(error=error)) from error

    def _drop_scratch(self) -> None:
        connections.close_all()  # also forgets the search path of every benchmark connection
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {SCRATCH_SCHEMA} CASCADE")

    # ---- writes -------------------------------------------------------------------------------------
    def _bench_plain_commits(self, total: int) -> list[float]:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {SCRATCH_SCHEMA}.plain_rows (id bigserial PRIMARY KEY, payload jsonb)")
        latencies = []
        for n in range(total):
            started = time.perf_counter()
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"INSERT INTO {SCRATCH_SCHEMA}.plain_rows (payload) VALUES (%s)", [json.dumps({"n": n})])
            latencies.append((time.perf_counter() - started) * 1000)
        return latencies

    def _bench_writes(self, writers: int, total: int, pause: float = 0.0) -> list[float]:
        per_writer = max(1, total // writers)
        latencies: list[float] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        barrier = threading.Barrier(writers)

        def write(worker: int) -> None:
            mine: list[float] = []
            try:
                _use_scratch()
                barrier.wait()
                for n in range(per_writer):
                    started = time.perf_counter()
                    with transaction.atomic():  # each write is its own transaction, as in a real action
                        audit(actor=None, actor_username="bench", action="bench.write",
                              details={"worker": worker, "n": n})  # fmt: skip
                    mine.append((time.perf_counter() - started) * 1000)
                    if pause:
                        time.sleep(pause)  # the rest of the action (a benchmark, not a test: pacing is the point)
            except BaseException as error:  # noqa: BLE001 - re-raised below
                errors.append(error)
            finally:
                connections.close_all()
                with lock:
                    latencies.extend(mine)

        threads = [threading.Thread(target=write, args=(worker,)) for worker in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return latencies

    # ---- a million events ---------------------------------------------------------------------------
    def _generated(self, count: int, after_seq: int, after_hash: str) -> Iterator[tuple[Any, ...]]:
        start = timezone.now() - timedelta(days=30)
        previous = after_hash
        actions = ("knowledge.searched", "routing.model_called", "assistant.answer_stored", "auth.login")
        for offset in range(1, count + 1):
            seq = after_seq + offset
            fields: dict[str, Any] = {
                "seq": seq,
                "created_at": start + timedelta(milliseconds=offset),
                "actor_id": None,
                "actor_username": f"user{offset % 50}",
                "actor_roles": ["Staff"],
                "action": actions[offset % 4],
                "object_type": "knowledge.document",
                "object_id": str(offset % 1000),
                "outcome": "success",
                "details": normalise_details({"provider": "anthropic", "chunk_ids": [offset, offset + 1]}),
                "previous_hash": previous,
            }
            fields["hash"] = previous = event_hash(fields)
            yield (
                seq, fields["created_at"], None, fields["actor_username"], '["Staff"]', fields["action"],
                fields["object_type"], fields["object_id"], "success", json.dumps(fields["details"]),
                fields["previous_hash"], fields["hash"],
            )  # fmt: skip

    def _load_events(self, count: int) -> None:
        head = AuditEvent.objects.order_by("-seq").values("seq", "hash").first()
        after_seq, after_hash = (head["seq"], head["hash"]) if head else (0, "0" * 64)
        with transaction.atomic(), connection.cursor() as cursor:
            raw = cursor.cursor
            statement = f"COPY {AuditEvent._meta.db_table} ({', '.join(COPY_COLUMNS)}) FROM STDIN"
            with raw.copy(statement) as copy:
                for row in self._generated(count, after_seq, after_hash):
                    copy.write_row(row)
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {AuditEvent._meta.db_table}")

    # ---- export -------------------------------------------------------------------------------------
    def _bench_export(self, export_format: str, head_seq: int) -> tuple[int, float, float, float]:
        baseline = _rss_mb()
        peak = baseline
        size = 0
        exported = 0
        started = time.perf_counter()
        with transaction.atomic():  # a server-side cursor, as a web request would use
            rows = audit_export_rows(AuditEvent.objects.all(), up_to_seq=head_seq)

            def counted() -> Iterator[tuple[Any, ...]]:
                nonlocal exported
                for row in rows:
                    exported += 1
                    yield row

            for number, piece in enumerate(render_rows(counted(), export_format)):
                size += len(piece.encode("utf-8"))
                if number % 50 == 0:
                    peak = max(peak, _rss_mb())
        seconds = time.perf_counter() - started
        return round(exported / seconds), round(peak, 1), round(peak - baseline, 1), round(size / 2**20, 1)
