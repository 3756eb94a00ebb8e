from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from portal.offline import OFFLINE_ENVIRONMENT
from tests.netguard.guard import NetworkBlocked


def test_the_offline_switches_are_set_in_the_process() -> None:
    for name, value in OFFLINE_ENVIRONMENT.items():
        assert os.environ[name] == value


def test_the_offline_switches_are_set_before_django_loads(subprocess_env: dict[str, str]) -> None:
    env = {k: v for k, v in subprocess_env.items() if k not in OFFLINE_ENVIRONMENT}
    code = (
        "import os, sys, portal\n"
        "assert 'litellm' not in sys.modules and 'transformers' not in sys.modules\n"
        "print(os.environ.get('HF_HUB_OFFLINE'), os.environ.get('LITELLM_LOCAL_MODEL_COST_MAP'))"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "1 True"


def test_the_suite_refuses_connections_that_leave_the_machine() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(NetworkBlocked):
        sock.connect(("203.0.113.10", 443))  # TEST-NET-3: never routed anyway


def test_the_suite_refuses_name_lookups_of_remote_hosts() -> None:
    with pytest.raises(NetworkBlocked):
        socket.getaddrinfo("huggingface.co", 443)


def test_the_suite_still_allows_loopback() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=2):
            pass


def test_subprocesses_started_by_tests_are_guarded_too(subprocess_env: dict[str, str]) -> None:
    code = (
        "import socket\n"
        "try:\n socket.create_connection(('203.0.113.10', 80), timeout=1)\n"
        "except OSError as e:\n print(type(e).__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "NetworkBlocked"
