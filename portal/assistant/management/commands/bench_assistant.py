"""`manage.py bench_assistant`: local overhead of a question, alone and under concurrent streams.

See portal/assistant/bench/assistant.py for what each figure means. Prints one `name: value` line per figure
(or one JSON object with --json). Run it on a database of its own:
    PORTAL_DB_NAME=portal_assistant_bench python manage.py bench_assistant
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Measure the assistant's local overhead per question and under many simultaneous streams."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--chunks", type=int, default=100_000, help="synthetic chunks (default %(default)s)")
        parser.add_argument("--questions", type=int, default=100, help="single-user questions (default %(default)s)")
        parser.add_argument("--warmup", type=int, default=10)
        parser.add_argument("--streams", type=int, default=200, help="simultaneous streams (default %(default)s)")
        parser.add_argument("--stream-seconds", type=float, default=2.0, help="provider stream length per answer")
        parser.add_argument(
            "--ramp-seconds", type=float, default=0.0, help="spread the stream starts over this long (default: at once)"
        )
        parser.add_argument("--port", type=int, default=0, help="port of the uvicorn server (default: a free one)")
        parser.add_argument("--router-calls", type=int, default=100, help="calls for the router overhead (0: skip)")
        parser.add_argument("--skip-concurrency", action="store_true")
        parser.add_argument("--keep", action="store_true", help="keep the synthetic corpus for the next run")
        parser.add_argument("--users", type=int, default=0, help="simulated staff asking, reading, thinking (0: skip)")
        parser.add_argument("--think-seconds", type=float, default=20.0, help="a user's pause between questions")
        parser.add_argument("--answer-seconds", type=float, default=20.0, help="provider stream length per answer")
        parser.add_argument("--duration-seconds", type=float, default=120.0, help="measured window of --users")
        parser.add_argument(
            "--web-workers", default="0", help="comma-separated web process counts for --users (0: one per core)"
        )
        parser.add_argument("--skip-single", action="store_true", help="skip the single-user figures")
        parser.add_argument(
            "--no-bare-litellm", dest="bare_litellm", action="store_false",
            help="skip the bare litellm.acompletion streams measured beside the concurrent ones",
        )  # fmt: skip
        parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")

    def handle(self, *args: Any, **options: Any) -> None:
        from portal.assistant.bench import assistant as bench

        call_command("migrate", interactive=False, verbosity=0)
        os.environ.setdefault(bench.BENCH_KEY_VARIABLE, "bench-key")
        log = self.stderr.write
        figures: dict[str, Any] = {"chunks": options["chunks"], "cpu_count": len(os.sched_getaffinity(0))}
        log(f"building or reusing {options['chunks']} synthetic chunks…")
        knowledge_base = bench.corpus_ensure(chunks=options["chunks"], log=log)
        try:
            if not options["skip_single"]:
                with bench.paced_provider(0.0) as instant_url:
                    user, profile, _ = bench.actors_ensure(knowledge_base=knowledge_base, provider_url=instant_url)
                    log(
                        "single user, each question followed by a floor sample (embedding, search SQL and "
                        "one audit write alone)…"
                    )
                    figures.update(bench.single_user(user=user, profile=profile, questions=options["questions"],
                                                     warmup=options["warmup"], floor=True))  # fmt: skip
            if options["users"]:
                self._users(figures, knowledge_base, options)
            if not options["skip_concurrency"]:
                self._concurrency(figures, knowledge_base, options)
            if options["router_calls"]:
                log("router overhead…")
                from portal.routing.bench.router import router_overhead

                figures.update(router_overhead(n=options["router_calls"]))
        finally:
            bench.actors_delete()
            if not options["keep"]:
                bench.corpus_delete(log=log)
            self._print(figures, as_json=options["json"])

    def _concurrency(self, figures: dict[str, Any], knowledge_base: Any, options: dict[str, Any]) -> None:
        from portal.assistant.bench import assistant as bench

        log_path = os.path.join(tempfile.gettempdir(), "bench_assistant_uvicorn.log")
        with bench.paced_provider(options["stream_seconds"]) as paced_url:
            user, profile, _ = bench.actors_ensure(knowledge_base=knowledge_base, provider_url=paced_url)
            self.stderr.write(f"{options['streams']} simultaneous streams…")
            try:
                figures.update(
                    bench.concurrent(
                        user=user, profile=profile, streams=options["streams"], port=options["port"] or None,
                        ramp_seconds=options["ramp_seconds"], log_path=log_path,
                    )
                )  # fmt: skip
            except RuntimeError as error:  # reported as a figure; the other figures still print
                figures["concurrent_failed"] = str(error)
                return
            if options["bare_litellm"]:
                self.stderr.write(f"{options['streams']} bare litellm streams from the same provider…")
                try:
                    figures.update(bench.bare_litellm(provider_url=paced_url, streams=options["streams"]))
                except RuntimeError as error:
                    figures["bare_litellm_failed"] = str(error)
        figures["concurrent_stream_seconds"] = options["stream_seconds"]
        bare = figures.get("bare_litellm_cpu_ms_per_answer")
        if bare:
            figures["web_cpu_to_bare_litellm_ratio"] = round(figures["concurrent_web_cpu_ms_per_question"] / bare, 2)
        single = figures.get("single_overhead_p95_ms") or 1.0
        figures["concurrent_overhead_p95_vs_single"] = round(figures["concurrent_overhead_p95_ms"] / single, 2)

    def _users(self, figures: dict[str, Any], knowledge_base: Any, options: dict[str, Any]) -> None:
        from portal.assistant.bench import assistant as bench
        from portal.assistant.bench import load as bench_load
        from portal.core.management.commands.run import web_workers

        log_path = os.path.join(tempfile.gettempdir(), "bench_assistant_users_uvicorn.log")
        counts = [web_workers(int(value)) for value in options["web_workers"].split(",") if value.strip()]
        with bench.paced_provider(options["answer_seconds"]) as paced_url:
            user, profile, _ = bench.actors_ensure(knowledge_base=knowledge_base, provider_url=paced_url)
            for count in counts:
                self.stderr.write(
                    f"{options['users']} users, think {options['think_seconds']} s, answers of "
                    f"{options['answer_seconds']} s, {count} web process(es), {options['duration_seconds']} s…"
                )
                try:
                    figures.update(
                        bench_load.staff_at_work(
                            user=user, profile=profile, users=options["users"], think=options["think_seconds"],
                            answer=options["answer_seconds"], duration=options["duration_seconds"],
                            web_workers=count, port=options["port"] or None, log_path=log_path,
                        )
                    )  # fmt: skip
                except RuntimeError as error:  # reported as a figure; the other figures still print
                    figures[f"users_w{count}_failed"] = str(error)
                single = figures.get("single_overhead_p95_ms")
                if single and f"users_w{count}_overhead_p95_ms" in figures:
                    ratio = figures[f"users_w{count}_overhead_p95_ms"] / single
                    figures[f"users_w{count}_overhead_p95_vs_single"] = round(ratio, 2)

    def _print(self, figures: dict[str, Any], *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(figures, indent=2))
        else:
            for name, value in figures.items():
                self.stdout.write(f"{name}: {value}")
