"""`manage.py bench_workflows`: what the workflow engine costs per step, and a for-each over 1,000 customers.

Runs in this process on the configured database (use one of its own: `PORTAL_DB_NAME=portal_workflows_bench`),
driving each step the way the Celery task does (claim, execute, complete; the next message is not sent, the loop
is the queue). Figures:
- step_overhead_p50_ms / step_overhead_p95_ms: a step's time in the engine (claim, variables, the step, the
  completing transaction and its audit event), model time excluded: the model steps' time as reported by the
  router is subtracted (the built-in offline model answers, so no network is involved);
- ask_overhead_p95_ms: the same for the model steps alone (gate, router, manifest, usage record);
- foreach_customers, foreach_seconds, foreach_steps_per_second: a for-each over that many customers with a
  classify (keyword rule), a condition and a notification per customer;
- foreach_queries_per_step: database statements per step of that for-each (savepoints and the audit lock
  included);
- process_peak_rss_mb, foreach_peak_rss_growth_mb: the process's peak resident memory after the for-each, and how
  much the for-each raised it (the process already holds Django, litellm and the URL modules);
- with --tracemalloc, foreach_peak_python_mb: the peak Python heap during a second run (several times slower).
"""

from __future__ import annotations

import json
import resource
import statistics
import time
import tracemalloc
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection

ADMIN, OWNER = "bench-workflows-admin", "bench-workflows-owner"


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


class Command(BaseCommand):
    help = "Per-step overhead of the workflow engine (model time excluded) and a for-each over 1,000 customers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customers", type=int, default=1000)
        parser.add_argument("--asks", type=int, default=20, help="model steps measured (default %(default)s)")
        parser.add_argument(
            "--tracemalloc", action="store_true", help="also the peak Python heap (a second, slower run)"
        )
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        from django.urls import reverse

        from portal.routing import router  # noqa: F401 - imported once here, not inside the first measured step

        reverse("workflows:workflow_list")  # loads every URL module (and litellm) before anything is timed
        admin, owner = _people()
        _customers_ensure(admin, options["customers"])
        figures: dict[str, Any] = {"foreach_customers": options["customers"]}
        ask_run = _start(admin, owner, _ask_definition(options["asks"]))
        ask_times = _drive(ask_run)
        loop_run = _start(admin, owner, _loop_definition(options["customers"]))
        queries = _QueryCounter()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        with connection.execute_wrapper(queries):
            loop_times = _drive(loop_run)
        elapsed = time.perf_counter() - started
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        figures["process_peak_rss_mb"] = round(rss_after / 1024, 1)
        figures["foreach_peak_rss_growth_mb"] = round((rss_after - rss_before) / 1024, 1)
        if options["tracemalloc"]:
            tracemalloc.start()
            _drive(_start(admin, owner, _loop_definition(options["customers"], suffix=" (memory)")))
            figures["foreach_peak_python_mb"] = round(tracemalloc.get_traced_memory()[1] / 1e6, 1)
            tracemalloc.stop()
        every = ask_times + loop_times
        figures.update(
            {
                "steps_measured": len(every),
                "step_overhead_p50_ms": round(statistics.median(every), 2),
                "step_overhead_p95_ms": round(_percentile(every, 0.95), 2),
                "ask_overhead_p95_ms": round(_percentile(ask_times, 0.95), 2),
                "foreach_steps": len(loop_times),
                "foreach_seconds": round(elapsed, 2),
                "foreach_steps_per_second": round(len(loop_times) / elapsed, 1),
                "foreach_queries_per_step": round(queries.count / max(1, len(loop_times)), 1),
            }
        )
        if options["json"]:
            self.stdout.write(json.dumps(figures, indent=2))
        else:
            for name, value in figures.items():
                self.stdout.write(f"{name}: {value}")


class _QueryCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


def _people() -> tuple[Any, Any]:
    from django.contrib.auth.models import Group, User

    admin, _ = User.objects.get_or_create(username=ADMIN)
    admin.groups.add(Group.objects.get(name="Administrator"))
    owner, _ = User.objects.get_or_create(username=OWNER)
    owner.groups.add(Group.objects.get(name="Staff"))
    return User.objects.get(pk=admin.pk), User.objects.get(pk=owner.pk)


def _customers_ensure(admin: Any, count: int) -> None:
    from portal.customers.selectors import customers_matching
    from portal.customers.services import customer_create

    existing = customers_matching(user=admin, search="Bench customer").count()
    for number in range(existing, count):
        customer_create(actor=admin, name=f"Bench customer {number:05d}", audit_event=False)


def _start(admin: Any, owner: Any, document: dict[str, Any]) -> int:
    from guardian.shortcuts import assign_perm

    from portal.workflows import services
    from portal.workflows.models import Workflow

    workflow = Workflow.objects.filter(name=document["name"]).first()
    if workflow is None or workflow.current is None or workflow.current.definition != document:
        try:
            workflow = services.workflow_publish(actor=admin, document=document, reason="benchmark").workflow
        except Exception:  # noqa: BLE001 - the same definition is already published
            assert workflow is not None
    assign_perm("workflows.run_workflow", owner, workflow)
    return services.run_start(actor=owner, workflow=workflow, inputs={}).pk


def _drive(run_id: int) -> list[float]:
    """Each step as the task runs it; returns its time in the engine without model time, in ms."""
    from portal.workflows import engine
    from portal.workflows.models import Run, Status, StepRun

    saved = engine.enqueue
    engine.enqueue = lambda *args: None
    times: list[float] = []
    try:
        while True:
            run = Run.objects.only("seq", "status").get(pk=run_id)
            if run.status not in (Status.PENDING, Status.RUNNING):
                break
            started = time.perf_counter()
            found = engine.claim(run_id, run.seq)
            if found is None:
                continue
            engine.execute(found)
            total = (time.perf_counter() - started) * 1000
            model_ms = StepRun.objects.only("model_ms").get(pk=found.step_run_id).model_ms or 0
            times.append(total - model_ms)
    finally:
        engine.enqueue = saved
    run = Run.objects.get(pk=run_id)
    if run.status != Status.DONE:
        raise RuntimeError(f"benchmark run {run_id} ended {run.status}: {run.error}")
    return times


def _ask_definition(count: int) -> dict[str, Any]:
    steps = [
        {
            "id": f"ask_{n}",
            "kind": "ask",
            "prompt": f"Benchmark question {n}: what is a workflow?",
            "task_type": "routine",
        }
        for n in range(count)
    ]
    return {"name": "Benchmark: model steps", "steps": steps}


def _loop_definition(count: int, suffix: str = "") -> dict[str, Any]:
    return {
        "name": f"Benchmark: for-each over customers{suffix}",
        "steps": [
            {
                "id": "each",
                "kind": "for_each",
                "over": {"customers": {"search": "Bench customer"}},
                "as": "customer",
                "limit": count,
                "steps": [
                    {
                        "id": "label",
                        "kind": "classify",
                        "text": "Customer {{ customer.name }}",
                        "keywords": ["confidential"],
                    },
                    {
                        "id": "check",
                        "kind": "condition",
                        "if": {"var": "steps.label.label", "op": "equals", "value": "internal"},
                        "then": [{"id": "tell", "kind": "notify", "message": "Checked {{ customer.name }}"}],
                    },
                ],
            }
        ],
    }
