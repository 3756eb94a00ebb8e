"""The portal served by uvicorn (ASGI, so answers really stream) for the tests that need a real server."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

START_SECONDS = 240  # a ceiling: the server loads the embedding model before it is ready


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def uvicorn(env: dict[str, str], log_path: Path, *, log_level: str = "warning") -> Iterator[str]:
    """uvicorn on a free port with `env`; yields its URL once /readyz answers (the models are loaded)."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1", "--port", str(port),
        "--lifespan", "off", "--log-level", log_level,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(timeout=2) as client:
                for _ in range(START_SECONDS * 4):
                    if server.poll() is not None:
                        pytest.fail("uvicorn exited:\n" + log_path.read_text())
                    try:
                        # ready, not just alive: the embedding model is loaded, so no request waits for it
                        if client.get(url + "/readyz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        server.wait(0.25)
                else:
                    pytest.fail("uvicorn did not start")
            yield url
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
