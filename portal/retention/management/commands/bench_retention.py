"""Time a retention run over many messages: peak memory of the run, and a page's latency while it runs.

    PORTAL_DB_NAME=portal_retention_bench python manage.py migrate
    PORTAL_DB_NAME=portal_retention_bench python manage.py bench_retention --messages 1000000

Creates conversations of `--per-conversation` messages with bulk_create, all older than the policy's period,
publishes a 30-day period for conversations, then runs retention while one thread samples the process's
resident memory and another asks a page (a staff member's conversation list) over and over.
Run it on a database of its own: it deletes every conversation older than 30 days.
"""

from __future__ import annotations

import datetime as dt
import statistics
import threading
import time
from typing import Any

import psutil
from django.core.management.base import BaseCommand
from django.db import connection, connections
from django.test import Client
from django.utils import timezone


class Command(BaseCommand):
    help = "Benchmark a retention run over many messages (own database!)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--messages", type=int, default=1_000_000)
        parser.add_argument("--per-conversation", type=int, default=50)
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--baseline-seconds", type=float, default=15.0, help="the page alone, before the run")

    def handle(self, *args: Any, **options: Any) -> None:
        from django.conf import settings
        from django.contrib.auth.models import Group, User
        from django.test.signals import setting_changed

        from portal.assistant.models import AssistantProfile, Conversation, Message
        from portal.retention.models import RetentionPolicyVersion
        from portal.retention.services import retention_run

        # pages render without collectstatic having run (as in the tests)
        plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
        settings.STORAGES = {**settings.STORAGES, "staticfiles": plain}
        setting_changed.send(sender=type(settings), setting="STORAGES", value=settings.STORAGES, enter=True)
        total, per = options["messages"], options["per_conversation"]
        staff, _ = User.objects.get_or_create(username="bench-staff")
        staff.groups.add(Group.objects.get(name="Staff"))
        officer, _ = User.objects.get_or_create(username="bench-officer")
        reader, _ = User.objects.get_or_create(username="bench-reader")  # asks the page; owns nothing deleted
        reader.groups.add(Group.objects.get(name="Staff"))
        profile, _ = AssistantProfile.objects.get_or_create(name="Bench", defaults={"instructions": "x"})
        old = timezone.now() - dt.timedelta(days=400)
        started = time.monotonic()
        conversations = total // per
        for offset in range(0, conversations, 1000):
            made = Conversation.objects.bulk_create(
                [
                    Conversation(owner=staff, profile=profile, title=f"Bench {offset + i}")
                    for i in range(min(1000, conversations - offset))
                ]  # fmt: skip
            )
            Message.objects.bulk_create(
                [Message(conversation=c, role="user" if n % 2 == 0 else "assistant",
                         content=f"Bench message {n} of a long conversation about refunds and invoices.",
                         manifest={"egress": {"parts": [{"kind": "question", "placeholders": 2}]}})
                 for c in made for n in range(per)], batch_size=5000,
            )  # fmt: skip
        Conversation.objects.filter(title__startswith="Bench ").update(updated_at=old)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE assistant_message; ANALYZE assistant_conversation")
        self.stdout.write(f"created {conversations} conversations, {Message.objects.count()} messages "
                          f"in {time.monotonic() - started:.1f} s")  # fmt: skip
        next_number = (RetentionPolicyVersion.objects.order_by("-number").values_list("number", flat=True).first()
                       or 0) + 1  # fmt: skip
        RetentionPolicyVersion.objects.create(number=next_number, periods={"conversations": 30}, author=officer,
                                              reason="benchmark")  # fmt: skip

        process = psutil.Process()
        stop = threading.Event()
        samples: list[int] = []
        latencies: list[float] = []

        def sample_memory() -> None:
            while not stop.is_set():
                samples.append(process.memory_info().rss)
                time.sleep(0.05)

        def ask_page() -> None:
            client = Client(HTTP_HOST="127.0.0.1")  # an allowed host (ALLOWED_HOSTS)
            client.force_login(reader)
            try:
                while not stop.is_set():
                    begun = time.monotonic()
                    response = client.get("/assistant/")
                    assert response.status_code == 200, response.status_code
                    latencies.append((time.monotonic() - begun) * 1000)
                    time.sleep(0.1)
            finally:
                connections.close_all()

        def percentile95(values: list[float]) -> float:
            ordered = sorted(values)
            return ordered[max(0, int(len(ordered) * 0.95) - 1)] if ordered else float("nan")

        alone: list[float] = []
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(reader)
        until = time.monotonic() + options["baseline_seconds"]
        while time.monotonic() < until:
            begun = time.monotonic()
            client.get("/assistant/")
            alone.append((time.monotonic() - begun) * 1000)
            time.sleep(0.1)
        if alone:
            self.stdout.write(f"page /assistant/ before the run: {len(alone)} requests, "
                              f"p50 {statistics.median(alone):.0f} ms, p95 {percentile95(alone):.0f} ms")  # fmt: skip
        baseline = process.memory_info().rss
        threads = [threading.Thread(target=sample_memory), threading.Thread(target=ask_page)]
        for thread in threads:
            thread.start()
        begun = time.monotonic()
        run = retention_run(trigger="manual", batch_size=options["batch_size"])
        seconds = time.monotonic() - begun
        stop.set()
        for thread in threads:
            thread.join()
        assert run is not None
        peak = max(samples or [baseline])
        latencies.sort()
        p95 = latencies[int(len(latencies) * 0.95) - 1] if latencies else float("nan")
        self.stdout.write(
            f"retention run: {run.deleted} in {run.batches} batches, {seconds:.1f} s "
            f"({Message.objects.count()} messages left); resident memory {baseline / 2**20:.0f} MB before, "
            f"peak {peak / 2**20:.0f} MB (+{(peak - baseline) / 2**20:.1f} MB); page /assistant/ during the run: "
            f"{len(latencies)} requests, p50 {statistics.median(latencies) if latencies else 0:.0f} ms, "
            f"p95 {p95:.0f} ms"
        )
