"""`manage.py bench_chat`: the chat in a real browser: time to the first answer token and the page's weight.

Starts uvicorn on the current database (static files collected and compressed, as in production), signs a
benchmark user in, opens an empty conversation in chromium (its weight: see
portal/assistant/bench/chat_page.py), then asks --questions questions in that conversation, answered by the
built-in offline model, and compares the browser's time to the first token with the server's own. Prints one
`name: value` line per figure (or one JSON object with --json). It refuses to run when a catalog model is
configured (the figures are for the offline model); run it on a database of its own:
    PORTAL_DB_NAME=portal_chat_bench python manage.py bench_chat
The benchmark user, profile and conversation are deleted at the end, and the synthetic corpus too unless
it was there before (or --keep).
"""

from __future__ import annotations

import json
import os
import tempfile
from importlib import import_module
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

CATALOG_NOT_EMPTY = (
    "a catalog model is configured: bench_chat measures the offline model; "
    "run it on a database of its own (PORTAL_DB_NAME=portal_chat_bench)"
)


class Command(BaseCommand):
    help = "Measure the chat's time to the first answer token in a real browser, and the chat page's weight."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--questions", type=int, default=20, help="measured questions (default %(default)s)")
        parser.add_argument("--warmup", type=int, default=2, help="questions asked first, not counted")
        parser.add_argument("--chunks", type=int, default=2000, help="synthetic chunks if no corpus is there")
        parser.add_argument("--port", type=int, default=0, help="port of the uvicorn server (default: a free one)")
        parser.add_argument("--keep", action="store_true", help="keep the synthetic corpus for the next run")
        parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")

    def handle(self, *args: Any, **options: Any) -> None:
        from knowledge.models import KnowledgeBase
        from portal.assistant.bench import assistant as bench
        from portal.assistant.bench import chat_page
        from portal.routing.models import CatalogModel

        try:
            executable = chat_page.chromium_executable()
        except RuntimeError as error:
            raise CommandError(str(error)) from error
        call_command("migrate", interactive=False, verbosity=0)
        if CatalogModel.objects.exists():
            raise CommandError(CATALOG_NOT_EMPTY)
        call_command("collectstatic", interactive=False, verbosity=0)
        log = self.stderr.write
        had_corpus = KnowledgeBase.objects.filter(name=bench.BENCH_KB_NAME).exists()
        knowledge_base = (
            KnowledgeBase.objects.get(name=bench.BENCH_KB_NAME)
            if had_corpus
            else bench.corpus_ensure(chunks=options["chunks"], log=log)
        )
        figures: dict[str, Any] = {"cpu_count": len(os.sched_getaffinity(0))}
        user, profile = bench.user_and_profile_ensure(knowledge_base=knowledge_base)
        session = bench._session_cookie(user)
        try:
            figures.update(self._measure(executable, user, profile, session, options))
        finally:
            import_module(settings.SESSION_ENGINE).SessionStore(session_key=session).delete()
            bench.actors_delete()
            if not (had_corpus or options["keep"]):
                bench.corpus_delete(log=log)
        self._print(figures, as_json=options["json"])

    def _measure(
        self, executable: str, user: Any, profile: Any, session: str, options: dict[str, Any]
    ) -> dict[str, Any]:
        from playwright.sync_api import sync_playwright

        from portal.assistant import services
        from portal.assistant.bench import assistant as bench
        from portal.assistant.bench import chat_page

        empty = services.conversation_create(actor=user, profile=profile)
        asked = services.conversation_create(actor=user, profile=profile)
        questions = bench._questions(options["questions"] + options["warmup"], seed=3)
        log_path = os.path.join(tempfile.gettempdir(), "bench_chat_uvicorn.log")
        with bench.uvicorn_server(options["port"] or None, log_path) as (url, _), sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=chat_page.CHROMIUM_FLAGS)
            try:
                cookies: list[Any] = [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": url}]
                self.stderr.write("page weight…")
                weight = chat_page.page_weight(browser, url, f"/assistant/conversations/{empty.pk}/", cookies)
                if weight.failed:
                    raise CommandError(f"the chat page failed to load: {weight.failed[0]}")
                context = browser.new_context(base_url=url)
                context.add_cookies(cookies)
                context.set_default_timeout(chat_page.ASK_WAIT_MS)
                page = context.new_page()
                page.add_init_script(chat_page.PROBE_SCRIPT)
                page.goto(f"/assistant/conversations/{asked.pk}/")
                self.stderr.write(f"{len(questions)} questions ({options['warmup']} to warm up)…")
                try:
                    first_tokens = chat_page.ask_and_time(page, questions, warmup=options["warmup"])
                except RuntimeError as error:
                    raise CommandError(f"{error} (see {log_path})") from error
                context.close()
            finally:
                browser.close()
        return {**first_tokens.figures(), **weight.figures()}

    def _print(self, figures: dict[str, Any], *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(figures, indent=2))
        else:
            for name, value in figures.items():
                self.stdout.write(f"{name}: {value}")
