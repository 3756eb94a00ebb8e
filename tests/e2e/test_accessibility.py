"""axe-core (from npm, `make axe`, served to the browser from disk) over the pages of every role this branch
reshaped, at 390 and 1280 px and in both themes: no serious or critical violation."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from audit.services import audit
from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.assistant.factories import AssistantProfileFactory, ConversationFactory, MessageFactory
from tests.customers.factories import CustomerFactory
from tests.e2e.conftest import sign_in
from tests.e2e.waits import PAGE_WAIT_MS
from tests.knowledge.factories import KnowledgeBaseFactory, grant

pytestmark = pytest.mark.django_db(transaction=True)

AXE_SCRIPT = Path(__file__).resolve().parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = {"serious", "critical"}
RUN_AXE = """axe.run(document, {resultTypes: ["violations"]}).then(result => result.violations.map(v => ({
  id: v.id, impact: v.impact, where: v.nodes.slice(0, 3).map(node => node.target.join(" "))})))"""


@pytest.fixture
def axe_script() -> Path:
    if not AXE_SCRIPT.is_file():
        if os.environ.get("CI"):
            pytest.fail("axe-core is not installed; `make axe` installs it (make test does)")
        pytest.skip("axe-core is not installed (make axe)")
    return AXE_SCRIPT


def _violations(page: Any, script: Path) -> list[str]:
    page.add_script_tag(path=str(script))
    found = page.evaluate(RUN_AXE)
    return [f"{item['id']} ({item['impact']}) at {item['where']}" for item in found if item["impact"] in BLOCKING]


@pytest.fixture
def cast() -> Iterator[dict[str, Any]]:
    UserFactory.create(username="alice", roles=["Administrator"])
    sam = UserFactory.create(username="sam", roles=["Staff"])
    UserFactory.create(username="audrey", roles=["Auditor"])
    conversation = ConversationFactory.create(
        owner=sam, profile=AssistantProfileFactory.create(usable_by=["Staff"]), title="Refunds"
    )
    question = MessageFactory.create(conversation=conversation, content="When are refunds paid?")
    MessageFactory.create(
        conversation=conversation, role="assistant", reply_to=question, feedback=1,
        content='Within **14 days**.\n\n```python\nimport os\n\ndef days() -> int:\n    return 14  # "two weeks"\n```',
        usage={"provider": "offline", "model_name": "Offline extractive model (built in)"},
        route={"task_type": "routine", "tier": "economy", "reason": "set by the profile", "candidates": ["offline"]},
        manifest={"parts": [{"kind": "question", "decision": "sent", "chars": 22}]},
    )  # fmt: skip
    MessageFactory.create(
        conversation=conversation, role="assistant", content="", status="error", error="No model answered."
    )
    handbook = KnowledgeBaseFactory.create(name="Handbook")
    grant(handbook, "view", role="Staff")
    audit(actor=sam, action="test.event")
    restricted = CustomerFactory.create(name="Imogen Whitlock", restricted=True, owner=sam)
    yield {"conversation": conversation, "handbook": handbook, "restricted_customer": restricted}


@pytest.mark.parametrize(
    ("scheme", "width"), [("light", 390), ("light", 1280), ("dark", 390), ("dark", 1280)]
)  # fmt: skip
def test_no_serious_accessibility_violation(
    browser: Any, live_server: Any, axe_script: Path, cast: dict[str, Any], scheme: str, width: int
) -> None:
    # axe is injected as a script of the test's own: the portal's CSP (rightly) refuses it otherwise
    context = browser.new_context(
        base_url=live_server.url, color_scheme=scheme, viewport={"width": width, "height": 844}, bypass_csp=True
    )
    context.set_default_timeout(PAGE_WAIT_MS)
    page = context.new_page()
    problems: list[str] = []

    def check(name: str) -> None:
        problems.extend(f"{name}: {problem}" for problem in _violations(page, axe_script))

    try:
        page.goto("/login/")
        check("sign-in")
        sign_in(page, "sam", DEFAULT_PASSWORD)
        page.wait_for_url("**/")
        check("staff home")
        page.goto(f"/assistant/conversations/{cast['conversation'].pk}/")
        page.locator(".answer-details summary").first.click()
        check("chat with details open")
        page.goto(f"/knowledge/{cast['handbook'].pk}/")
        check("knowledge base")
        page.goto("/audit/")
        check("403 page")
        page.goto("/no-such-page/")
        check("404 page")
        context.clear_cookies()
        sign_in(page, "alice", DEFAULT_PASSWORD)
        page.wait_for_url("**/")
        if width >= 768:
            page.get_by_role("navigation", name="Main").locator("summary", has_text="Manage").click()
        else:
            page.get_by_role("button", name="Menu").click()
        check("administrator home, menu open")
        page.goto("/routing/usage/")
        check("usage")
        page.goto("/settings/")
        check("settings")
        page.goto("/routing/models/")
        check("models")
        page.goto("/routing/budgets/")
        check("budgets")
        page.goto("/assistant/profiles/")
        check("assistant profiles")
        page.goto("/assistant/profiles/new/")
        check("new assistant profile")
        page.goto(f"/assistant/profiles/{cast['conversation'].profile_id}/edit/")
        check("edit assistant profile")
        page.goto(f"/assistant/profiles/{cast['conversation'].profile_id}/access/")
        check("who may use an assistant profile")
        page.goto(f"/customers/{cast['restricted_customer'].pk}/access/")
        check("who may see a restricted customer")
        context.clear_cookies()
        sign_in(page, "audrey", DEFAULT_PASSWORD)
        page.wait_for_url("**/")
        page.goto("/audit/verify/")
        check("verify the chain")
    finally:
        context.close()
    assert problems == []
