"""deploy/ works: two web processes and two Celery workers on Redis, one database over TCP, behind nginx.

A journey (sign in, upload a document that a worker of the ingestion queue makes Ready, ask a question whose
answer streams through nginx from the fake provider) and a short bounded load, with 0 errors, served by both
web processes. See tests/core/scaleout.py for what plays each host.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.core import portal_run
from tests.core.scaleout import DatabaseHost, Layout, require_nginx
from tests.workers import REDIS_GROUP, REDIS_URL, require_redis

pytestmark = [
    pytest.mark.scaleout,
    pytest.mark.redis,
    pytest.mark.xdist_group(REDIS_GROUP),
    pytest.mark.timeout(900),
]

FAKE_KEY_VARIABLE = "PORTAL_SCALEOUT_FAKE_KEY"
LOAD_CLIENTS = 4
LOAD_REQUESTS = 40
LOAD_PATHS = ("/", "/knowledge/", "/assistant/", "/knowledge/search/?q=Zephyrine", "/healthz")

# Run in the database's own `manage.py shell`: the demo organisation, and the fake provider first in the route
# of the demo "Handbook helper" profile (routine), as an administrator would add it on the Models page.
SETUP_CODE = """
import json
from portal.core.demo import demo_organisation_ensure
from portal.routing.models import CatalogModel
from portal.routing.selectors import task_tiers
credentials = demo_organisation_ensure()
CatalogModel.objects.create(
    display_name="Scale-out fake provider", litellm_model="openai/fake-model", api_base={url!r},
    api_key_env={key!r}, tier=task_tiers()["routine"], timeout_seconds=60, order=0,
)
print("CREDENTIALS=" + json.dumps(credentials))
"""


@pytest.fixture
def layout(tmp_path: Path, subprocess_env: dict[str, str], fake_provider: Any) -> Iterator[Layout]:
    nginx = require_nginx()
    require_redis()
    import redis
    from cryptography.fernet import Fernet

    prefix = f"portal-scaleout-{uuid.uuid4().hex}:"
    database = DatabaseHost(tmp_path / "database")
    env = {
        name: value
        for name, value in subprocess_env.items()
        if not name.startswith(("PORTAL_DB_", "CELERY_", "DB_")) and name not in {"DATABASE_URL", "PORTAL_DEBUG"}
    }
    env.update(
        DATABASE_URL=database.portal_url,
        CELERY_BROKER_URL=REDIS_URL,
        CELERY_REDIS_KEY_PREFIX=prefix,
        SECRET_KEY="scale-out-" + uuid.uuid4().hex * 2,  # the same on every host: sessions are read anywhere
        GOVERNANCE_VAULT_KEY=Fernet.generate_key().decode(),  # likewise the vault of placeholders
        KNOWLEDGE_STORAGE_DIR=str(tmp_path / "shared" / "knowledge"),  # the shared storage for originals
        AUDIT_EXPORT_DIR=str(tmp_path / "shared" / "audit-exports"),
        PORTAL_DEBUG="0",
        PORTAL_DEMO="1",
        PORTAL_WARM_UP="1",
        **{FAKE_KEY_VARIABLE: "fake-key"},
    )
    layout = Layout(folder=tmp_path, env=env, database=database)
    try:
        database.start()
        layout.manage("db_harden", "--role", "portal", DATABASE_URL=database.superuser_url)
        layout.manage("migrate", "--noinput", "-v", "0", PORTAL_VAR_DIR=layout.host_env("release")["PORTAL_VAR_DIR"])
        layout.manage("db_harden", "--role", "portal", DATABASE_URL=database.superuser_url)
        output = layout.manage(
            "shell", "-c", SETUP_CODE.format(url=fake_provider.url, key=FAKE_KEY_VARIABLE),
            PORTAL_VAR_DIR=layout.host_env("release")["PORTAL_VAR_DIR"],
        )  # fmt: skip
        layout.env["SCALEOUT_CREDENTIALS"] = output.rsplit("CREDENTIALS=", 1)[1].strip()
        layout.start_worker("worker-ingestion", "ingestion,celery", beat=True)
        layout.start_worker("worker-interactive", "interactive,learning")
        layout.start_web("web-1")
        layout.start_web("web-2")
        layout.start_nginx(nginx)
        layout.wait_ready()
        yield layout
    finally:
        layout.stop()
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"{prefix}*", count=500):
            client.delete(key)


def _ask_streamed(client: httpx.Client, fake_provider: Any) -> dict[str, Any]:
    """Ask in a new conversation with the page's script's Accept header; the provider holds its stream after
    three words until this client has read the first piece, which it only can if nginx does not buffer."""
    chat = client.get("/assistant/")
    profile = re.search(r'<option value="(\d+)"[^>]*>\s*Handbook helper', chat.text)
    assert profile, "no Handbook helper profile to ask"
    token = portal_run._csrf(client, chat)
    conversation = client.post("/assistant/conversations/new/", data={"profile": profile.group(1),
                                                                      "csrfmiddlewaretoken": token})  # fmt: skip
    match = re.search(r"/assistant/conversations/(\d+)/", str(conversation.url))
    assert match, f"no conversation was opened ({conversation.url})"
    fake_provider.hold_stream(after_words=3)
    events: list[dict[str, Any]] = []
    headers = {"Accept": "application/x-ndjson", "X-CSRFToken": portal_run._csrf(client, conversation)}
    with client.stream(
        "POST", f"/assistant/conversations/{match.group(1)}/ask/", headers=headers,
        data={"question": portal_run.QUESTION}, timeout=60,
    ) as response:  # fmt: skip
        assert response.status_code == 200, response.read()[:500]
        assert response.headers["content-type"].startswith("application/x-ndjson")
        for line in response.iter_lines():
            if not line.strip():
                continue
            event = json.loads(line)
            events.append(event)
            if event["event"] == "delta" and sum(e["event"] == "delta" for e in events) == 1:
                fake_provider.release()  # the first piece came through while the provider still held the rest
    done = [event for event in events if event["event"] == "done"]
    assert done, f"the stream ended without an answer: {events[-3:]}"
    return done[-1]


def _load(layout: Layout, credentials: dict[str, str]) -> list[str]:
    """LOAD_REQUESTS page views over LOAD_CLIENTS signed-in clients at once; returns the failures."""

    def client_run(number: int) -> list[str]:
        failures = []
        with contextlib.closing(portal_run.sign_in(layout.base_url, "admin", credentials["admin"])) as client:
            for index in range(number, LOAD_REQUESTS, LOAD_CLIENTS):
                path = LOAD_PATHS[index % len(LOAD_PATHS)]
                try:
                    response = client.get(path)
                    if response.status_code != 200:
                        failures.append(f"{path}: HTTP {response.status_code}")
                except httpx.HTTPError as error:
                    failures.append(f"{path}: {type(error).__name__}: {error}")
        return failures

    with ThreadPoolExecutor(LOAD_CLIENTS) as pool:
        return [failure for failures in pool.map(client_run, range(LOAD_CLIENTS)) for failure in failures]


def test_two_web_processes_and_two_workers_behind_nginx_serve_a_journey_and_a_bounded_load(
    layout: Layout, fake_provider: Any
) -> None:
    credentials = json.loads(layout.env["SCALEOUT_CREDENTIALS"])
    with contextlib.closing(portal_run.sign_in(layout.base_url, "admin", credentials["admin"])) as admin:
        document = portal_run.upload(admin)  # Ready once a worker of the ingestion queue has processed it
        portal_run.search(admin, document)
        done = _ask_streamed(admin, fake_provider)
    assert "chat-error" not in done["html"], done["html"][:2000]
    assert "This is the fake provider" in done["html"], done["html"][:2000]
    assert fake_provider.requests, "the answer did not come from the fake provider"

    failures = _load(layout, credentials)
    assert failures == [], failures[:5]

    ingestion_log = next(s for s in layout.services if s.name == "worker-ingestion").log.read_text()
    interactive_log = next(s for s in layout.services if s.name == "worker-interactive").log.read_text()
    assert re.search(r"Task knowledge\.document_process\[[^\]]+\] succeeded", ingestion_log), layout.logs()
    assert "knowledge.document_process" not in interactive_log.split("[tasks]")[-1].split("ready.", 1)[-1]
    served = layout.upstreams_served()
    assert set(served) == {f"127.0.0.1:{port}" for port in layout.web_ports}, served
    assert all(count >= 5 for count in served.values()), served
