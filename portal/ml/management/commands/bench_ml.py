"""`manage.py bench_ml`: what the learned task router costs a question, in one run.

On the assistant benchmark's synthetic corpus (portal/assistant/bench/assistant.py, default 100k chunks) with a
profile that routes automatically, questions are asked through `pipeline.answer()` in alternating blocks
with the learned router active and with no router active (the keyword classifier), so both see the same
machine load. Figures: the local overhead p50/p95 of a question with the router on and off and their
ratio; the route and retrieve stages on and off (the router embeds the question; retrieval then finds
that embedding in the cache); and the prediction alone (`task_type_predict`, embedding cached) p50/p95,
as a share of the question's overhead p95. Run it on its own database:
    PORTAL_DB_NAME=portal_assistant_bench python manage.py bench_ml
Switching the router on and off between blocks sets the registry row's state directly (this database
only); everything else goes through the services.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Local overhead of a question with the learned task router on and off, and its prediction time."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--chunks", type=int, default=100_000)
        parser.add_argument("--questions", type=int, default=40, help="questions per block (default %(default)s)")
        parser.add_argument("--blocks", type=int, default=3, help="blocks per state, alternating (default %(default)s)")
        parser.add_argument("--warmup", type=int, default=10)
        parser.add_argument("--keep", action="store_true", help="keep the synthetic corpus for the next run")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        from portal.assistant.bench import assistant as bench

        call_command("migrate", interactive=False, verbosity=0)
        os.environ.setdefault(bench.BENCH_KEY_VARIABLE, "bench-key")
        log = self.stderr.write
        log(f"building or reusing {options['chunks']} synthetic chunks…")
        knowledge_base = bench.corpus_ensure(chunks=options["chunks"], log=log)
        figures: dict[str, Any] = {"chunks": options["chunks"], "cpu_count": os.cpu_count()}
        try:
            with bench.paced_provider(0.0) as url:
                user, profile, _ = bench.actors_ensure(knowledge_base=knowledge_base, provider_url=url)
                profile.task_type = ""  # automatic: every question is classified
                profile.save(update_fields=["task_type"])
                router = _router_ensure(log)
                figures["router_version"] = router.version
                figures.update(_measure(user, profile, router, options, log))
        finally:
            bench.actors_delete()
            if not options["keep"]:
                bench.corpus_delete(log=log)
        if options["json"]:
            self.stdout.write(json.dumps(figures, indent=2))
        else:
            for name, value in figures.items():
                self.stdout.write(f"{name}: {value}")


def _router_ensure(log: Any) -> Any:
    from portal.ml import demo, services
    from portal.ml.models import ModelState, ModelVersion, Purpose, TrainingRun

    current = ModelVersion.objects.filter(purpose=Purpose.TASK_ROUTER).exclude(state=ModelState.RETIRED).first()
    if current is not None:
        return current
    log("training the task router on the demo examples…")
    services.demo_task_labels_ensure(examples=demo.task_examples())
    run = TrainingRun.objects.create(purpose=Purpose.TASK_ROUTER, parameters={})
    services.training_run_execute(run_id=run.pk)
    run.refresh_from_db()
    if run.model_version is None:
        raise RuntimeError(run.message)
    return run.model_version


def _ask(user: Any, profile: Any, question: str) -> dict[str, float]:
    from portal.assistant import pipeline, services

    conversation = services.conversation_create(actor=user, profile=profile)

    async def ask() -> dict[str, float]:
        async for event in pipeline.answer(user=user, conversation=conversation, question=question):
            if isinstance(event, pipeline.AnswerStored):
                if event.message.status != "complete":
                    raise RuntimeError(event.message.error)
                return event.timings
        raise RuntimeError("no answer stored")

    return async_to_sync(ask)()


def _measure(user: Any, profile: Any, router: Any, options: dict[str, Any], log: Any) -> dict[str, Any]:
    from portal.assistant.bench.assistant import _questions, percentiles
    from portal.ml.models import ModelState, ModelVersion
    from portal.ml.predict import TaskPrediction, task_type_predict

    samples: dict[str, dict[str, list[float]]] = {
        state: {"overhead": [], "route": [], "retrieve": []} for state in ("on", "off")
    }
    predictions: list[float] = []
    learned = 0
    seed = 100
    for question in _questions(options["warmup"], seed=seed):
        _ask(user, profile, question)
    for block in range(options["blocks"] * 2):
        state = "on" if block % 2 == 0 else "off"
        ModelVersion.objects.filter(pk=router.pk).update(
            state=ModelState.ACTIVE if state == "on" else ModelState.CANDIDATE
        )
        seed += 1
        log(f"block {block + 1}/{options['blocks'] * 2}: router {state}")
        for question in _questions(options["questions"], seed=seed):
            timings = _ask(user, profile, question)
            samples[state]["overhead"].append(timings["overhead_ms"])
            samples[state]["route"].append(timings.get("stage_route_ms", 0.0))
            samples[state]["retrieve"].append(timings.get("stage_retrieve_ms", 0.0))
            if state == "on":
                # the prediction alone, as route_decide makes it (its embedding is now in the cache)
                started = time.perf_counter()
                outcome = task_type_predict(question)
                predictions.append((time.perf_counter() - started) * 1000)
                learned += isinstance(outcome, TaskPrediction)
    ModelVersion.objects.filter(pk=router.pk).update(state=ModelState.ACTIVE)
    figures: dict[str, Any] = {"questions_per_state": len(samples["on"]["overhead"])}
    for state in ("on", "off"):
        for name, values in samples[state].items():
            p50, p95 = percentiles(values)
            figures[f"router_{state}_{name}_p50_ms"] = p50
            figures[f"router_{state}_{name}_p95_ms"] = p95
    figures["overhead_p95_on_vs_off"] = round(
        figures["router_on_overhead_p95_ms"] / figures["router_off_overhead_p95_ms"], 3
    )
    figures["overhead_p50_on_vs_off"] = round(
        figures["router_on_overhead_p50_ms"] / figures["router_off_overhead_p50_ms"], 3
    )
    p50, p95 = percentiles(predictions)
    figures["prediction_p50_ms"] = p50
    figures["prediction_p95_ms"] = p95
    figures["prediction_p95_share_of_overhead_p95"] = round(p95 / figures["router_off_overhead_p95_ms"], 4)
    figures["questions_routed_by_the_learned_router"] = learned
    return figures
