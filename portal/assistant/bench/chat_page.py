"""The chat as a reader sees it, in a real browser (Playwright + Debian's chromium): time to the first
answer token, and the weight of the chat page. Used by `manage.py bench_chat` and tests/e2e/test_chat_speed.py.

- browser time to first token, per question: `performance.now()` at the ask form's submit event (a
  capture listener, so before assistant.js sends it) to the moment the first streamed text is in
  `.streaming-text` (a MutationObserver; the DOM change, not the paint).
- server time to first token, per question: `first_delta_ms` of the stream's `done` event: from the moment
  the ask view began to the moment it yielded its first answer piece (portal/assistant/views.py); the page
  hands the event's timings on as an `assistant:answered` DOM event (static/js/assistant.js), because the
  browser keeps no copy of a streamed fetch body for Playwright to read.
- their difference per question is what the browser, the network and the page's stream reader add.
- page weight: every response of a fresh browser context (empty cache) opening an empty conversation:
  the HTML and every CSS/JS/font/image it loads, as transferred: Playwright's `responseBodySize`
  (the body as it came over the wire, compressed if the server compressed it; headers not counted).
  The decoded size (`len(response.body())`) is reported beside it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any

from portal.assistant.bench.assistant import percentiles

CHROMIUM_NAMES = ("chromium", "chromium-browser")
# also the browser tests' flags (tests/e2e/conftest.py)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
CHROMIUM_MISSING = "chromium is not installed (apt-get install chromium): the chat benchmark needs a real browser"
ASK_WAIT_MS = 120_000  # a ceiling for one answer (the server's first question loads the embedding model)

# Installed before the page's own scripts run (page.add_init_script).
PROBE_SCRIPT = """
(() => {
  const bench = { submits: [], firsts: [], answers: [], waiting: false };
  window.__chatBench = bench;
  document.addEventListener("submit", (event) => {
    if (event.target && event.target.id === "ask-form") {
      bench.submits.push(performance.now());
      bench.waiting = true;
    }
  }, true);
  document.addEventListener("assistant:answered", (event) => { bench.answers.push(event.detail); });
  const observer = new MutationObserver(() => {
    if (!bench.waiting) return;
    const text = document.querySelector("#answer-streaming .streaming-text");
    if (text && text.textContent.length > 0) {
      bench.firsts.push(performance.now());
      bench.waiting = false;
    }
  });
  const start = () => observer.observe(document.body, { childList: true, subtree: true, characterData: true });
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
"""


def chromium_executable() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(CHROMIUM_MISSING)


@dataclass
class FirstTokens:
    browser_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)

    @property
    def differences_ms(self) -> list[float]:
        return [browser - server for browser, server in zip(self.browser_ms, self.server_ms, strict=True)]

    def figures(self) -> dict[str, Any]:
        browser_p50, browser_p95 = percentiles(self.browser_ms)
        server_p50, server_p95 = percentiles(self.server_ms)
        difference_p50, difference_p95 = percentiles(self.differences_ms)
        return {
            "questions": len(self.browser_ms),
            "browser_ttft_p50_ms": browser_p50,
            "browser_ttft_p95_ms": browser_p95,
            "server_ttft_p50_ms": server_p50,
            "server_ttft_p95_ms": server_p95,
            "browser_minus_server_p95_ms": round(browser_p95 - server_p95, 2),
            "per_question_difference_p50_ms": difference_p50,
            "per_question_difference_p95_ms": difference_p95,
        }


def ask_and_time(page: Any, questions: list[str], *, warmup: int = 0) -> FirstTokens:
    """Ask each question in the conversation open in `page` (PROBE_SCRIPT installed before it loaded);
    the first `warmup` answers are not counted."""
    measured = FirstTokens()
    field_ = page.locator("#ask-form textarea")
    button = page.locator("#ask-form").get_by_role("button", name="Ask")
    for index, question in enumerate(questions):
        field_.fill(question)
        button.click()
        # the page has placed the stored answer and given the button back: the next question may go
        page.wait_for_function(f"() => window.__chatBench.answers.length > {index}", timeout=ASK_WAIT_MS)
        page.wait_for_function(
            "() => !document.querySelector('#ask-form button.primary').disabled", timeout=ASK_WAIT_MS
        )
        probe = page.evaluate("() => window.__chatBench")
        if len(probe["firsts"]) != index + 1 or len(probe["submits"]) != index + 1:
            raise RuntimeError(f"question {index + 1}: the page showed no streamed text before the answer")
        if index >= warmup:
            measured.browser_ms.append(probe["firsts"][index] - probe["submits"][index])
            measured.server_ms.append(float(probe["answers"][index]["timings"]["first_delta_ms"]))
    return measured


@dataclass
class PageWeight:
    transferred_bytes: int
    decoded_bytes: int
    requests: int
    failed: list[str]

    def figures(self) -> dict[str, Any]:
        return {
            "chat_page_bytes": self.transferred_bytes,
            "chat_page_decoded_bytes": self.decoded_bytes,
            "chat_page_requests": self.requests,
            "chat_page_failed_requests": len(self.failed),
        }


def page_weight(browser: Any, base_url: str, path: str, cookies: list[dict[str, Any]]) -> PageWeight:
    """What opening `path` costs with an empty cache: a context of its own, signed in by `cookies`."""
    context = browser.new_context(base_url=base_url)
    context.add_cookies(cookies)
    responses: list[Any] = []
    try:
        page = context.new_page()
        page.on("response", lambda response: responses.append(response))
        page.goto(path, wait_until="networkidle")
        transferred = decoded = 0
        failed = []
        for response in responses:
            transferred += int(response.request.sizes()["responseBodySize"])
            decoded += len(response.body())
            if response.status >= 400:
                failed.append(f"{response.status} {response.url}")
        return PageWeight(transferred, decoded, len(responses), failed)
    finally:
        context.close()
