from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portal.core.checks import ERROR_IMPORTED_TOO_EARLY, ERROR_SWITCH_CHANGED, ERROR_SWITCH_NOT_INHERITED
from portal.offline import (
    MESSAGE_QUEUE_REMOVED,
    OFFLINE_ENVIRONMENT,
    SWITCHES,
    TELEMETRY_QUEUE,
    telemetry_queue_remove,
)
from tests.conftest import REPO_ROOT
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


# ---- every switch, set before the libraries load ---------------------------------------------------------
def test_importing_the_portal_sets_every_switch_and_loads_no_protected_library(subprocess_env: dict[str, str]) -> None:
    env = {k: v for k, v in subprocess_env.items() if k not in OFFLINE_ENVIRONMENT}
    code = (
        "import json, os, sys, portal\n"
        "from portal.offline import OFFLINE_ENVIRONMENT, PROTECTED_MODULES\n"
        "print(json.dumps([[n for n in PROTECTED_MODULES if n in sys.modules],"
        " {n: os.environ.get(n) for n in OFFLINE_ENVIRONMENT}]))"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    loaded, switches = json.loads(result.stdout)
    assert loaded == []
    assert switches == OFFLINE_ENVIRONMENT
    assert switches["ORT_DISABLE_TELEMETRY"] == "1"
    assert switches["LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS"] == "True"


def test_onnxruntime_keeps_no_telemetry_queue_once_the_portal_is_imported(tmp_path: Path) -> None:
    # A bare environment without CI variables: onnxruntime turns its telemetry off by itself under CI.
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    code = (
        "import portal.offline, onnxruntime\n"
        "from onnx import TensorProto, helper\n"
        "x = helper.make_tensor_value_info('x', TensorProto.FLOAT, [1])\n"
        "y = helper.make_tensor_value_info('y', TensorProto.FLOAT, [1])\n"
        "graph = helper.make_graph([helper.make_node('Relu', ['x'], ['y'])], 'g', [x], [y])\n"
        "model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])\n"
        "onnxruntime.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, check=True, timeout=120)
    assert sorted(path.name for path in tmp_path.rglob("*")) == []


def test_litellm_reads_no_dotenv_file_into_the_environment(subprocess_env: dict[str, str], tmp_path: Path) -> None:
    # `python -c` makes python-dotenv look in the working folder (a script makes it walk up from litellm's).
    (tmp_path / ".env").write_text("PORTAL_DOTENV_PROBE=leaked\n")
    env = {k: v for k, v in subprocess_env.items() if k != "LITELLM_MODE"}
    probe = "import os, litellm; print(os.environ.get('PORTAL_DOTENV_PROBE'))"

    def run(code: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout.strip().splitlines()[-1]

    assert run(probe) == "leaked"  # litellm's default DEV mode loads it: the probe works
    assert run("import portal; " + probe) == "None"


def test_token_counting_of_llama_models_downloads_no_tokenizer(monkeypatch: pytest.MonkeyPatch) -> None:
    import litellm
    from litellm import utils as litellm_utils

    from portal.routing import router  # noqa: F401 (importing the router sets litellm's switches)

    downloads: list[str] = []
    monkeypatch.setattr(litellm_utils.Tokenizer, "from_pretrained", lambda name, *a, **k: downloads.append(name))
    litellm_utils._select_tokenizer_helper.cache_clear()  # an earlier count may have cached the choice
    # Without the switch litellm fetches Xenova/llama-3-tokenizer from huggingface.co for this name.
    assert litellm.token_counter(model="together_ai/meta-llama/Llama-3-70b-chat-hf", text="hello there") > 0
    assert downloads == []


def test_the_readme_lists_every_switch_with_what_it_stops() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Nothing phones home", 1)[1].split("\n## ", 1)[0]
    for switch in SWITCHES:
        assert f"`{switch.name}={switch.value}`" in section, switch.name


# ---- the telemetry queue an unprotected run left behind ----------------------------------------------------
@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    return tmp_path


def _leave_queue(base: Path) -> Path:
    queue = base / TELEMETRY_QUEUE
    queue.mkdir(parents=True)
    (queue / "deviceid").write_text("c0ffee")
    (queue / "onnxruntime.db").write_bytes(b"SQLite format 3\x00")
    return queue


def test_the_start_removes_the_queue_and_says_so_once(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    queue = _leave_queue(home / ".cache")
    (home / ".cache" / "Microsoft" / "Edge").mkdir()  # someone else's: stays, and so does its parent
    with caplog.at_level(logging.WARNING, logger="portal.offline"):
        assert telemetry_queue_remove() == [queue]
        assert telemetry_queue_remove() == []
    assert not queue.exists()
    assert not (home / ".cache" / "Microsoft" / "DeveloperTools").exists()
    assert (home / ".cache" / "Microsoft" / "Edge").is_dir()
    assert [record.getMessage() for record in caplog.records] == [MESSAGE_QUEUE_REMOVED % queue]


def test_the_start_removes_the_queue_under_xdg_cache_home_too(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    xdg = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    queues = [_leave_queue(xdg), _leave_queue(home / ".cache")]
    assert telemetry_queue_remove() == queues
    assert not (xdg / "Microsoft").exists()
    assert not (home / ".cache" / "Microsoft").exists()


def test_the_start_leaves_a_home_without_a_queue_alone(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    (home / ".cache").mkdir()
    with caplog.at_level(logging.WARNING, logger="portal.offline"):
        assert telemetry_queue_remove() == []
    assert caplog.records == []
    assert (home / ".cache").is_dir()


# ---- manage.py check ---------------------------------------------------------------------------------------
def _check(env: dict[str, str], *, before: str = "", deploy: bool = False) -> subprocess.CompletedProcess[str]:
    """`manage.py check` in a process that runs `before` first (as a wrapper script or sitecustomize would)."""
    argv = ["manage.py", "check", *(["--deploy"] if deploy else [])]
    code = (
        f"{before}\nimport sys\nsys.argv = {argv!r}\nimport runpy\nrunpy.run_path('manage.py', run_name='__main__')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180
    )


def _without(env: dict[str, str], *names: str) -> dict[str, str]:
    return {name: value for name, value in env.items() if name not in names}


def test_check_fails_when_a_protected_library_was_imported_before_the_switches(
    subprocess_env: dict[str, str],
) -> None:
    env = _without(subprocess_env, "PORTAL_DEBUG", *OFFLINE_ENVIRONMENT)  # a shell that sets none of them
    assert _check(env).returncode == 0
    result = _check(env, before="import onnxruntime")
    assert result.returncode != 0
    assert "portal.E001" in result.stderr
    assert ERROR_IMPORTED_TOO_EARLY.format(module="onnxruntime") in result.stderr


def test_an_early_import_is_fine_when_the_process_started_with_every_switch(subprocess_env: dict[str, str]) -> None:
    result = _check(_without(subprocess_env, "PORTAL_DEBUG"), before="import onnxruntime")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "portal.E001" not in result.stderr


def test_check_only_warns_in_debug_mode(subprocess_env: dict[str, str]) -> None:
    env = dict(_without(subprocess_env, *OFFLINE_ENVIRONMENT), PORTAL_DEBUG="1")
    result = _check(env, before="import onnxruntime")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "WARNINGS:" in result.stderr and "portal.E001" in result.stderr


def test_check_fails_when_a_switch_was_changed_after_the_portal_set_it(subprocess_env: dict[str, str]) -> None:
    result = _check(
        _without(subprocess_env, "PORTAL_DEBUG"), before="import os, portal; os.environ['HF_HUB_OFFLINE'] = '0'"
    )
    assert result.returncode != 0
    assert "portal.E002" in result.stderr
    expected = ERROR_SWITCH_CHANGED.format(name="HF_HUB_OFFLINE", value="set to '0'", expected="1")
    assert expected in result.stderr


def test_check_deploy_fails_when_the_service_environment_lacks_a_switch(subprocess_env: dict[str, str]) -> None:
    env = _without(subprocess_env, "PORTAL_DEBUG", "ORT_DISABLE_TELEMETRY")
    assert "portal.E003" not in _check(env).stderr  # not a deploy check: `manage.py run` starts anyway
    result = _check(env, deploy=True)
    assert result.returncode != 0
    assert ERROR_SWITCH_NOT_INHERITED.format(name="ORT_DISABLE_TELEMETRY", value="missing") in result.stderr
    assert result.stderr.count("portal.E003") == 1


def test_a_worker_refuses_to_start_when_a_protected_library_came_first(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    from portal.celery import ERROR_WORKER_REFUSED

    env = dict(
        _without(subprocess_env, "PORTAL_DEBUG", "CELERY_BROKER_URL", *OFFLINE_ENVIRONMENT),
        CELERY_FILESYSTEM_BROKER_DIR=str(tmp_path / "broker"),
        HOME=str(tmp_path),
    )
    argv = ["celery", "-A", "portal", "worker", "--pool", "solo", "--loglevel", "INFO", "--without-mingle"]

    def start(before: str, log: Path) -> subprocess.Popen[bytes]:
        code = f"{before}\nimport sys\nsys.argv = {argv!r}\nfrom celery.__main__ import main\nmain()\n"
        with log.open("wb") as output:
            return subprocess.Popen(
                [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
            )

    refused_log = tmp_path / "refused.log"
    refused = start("import onnxruntime", refused_log)
    try:
        refused.wait(180)
    finally:
        refused.kill()  # a worker that started anyway
        refused.wait()
    output = refused_log.read_text()
    assert refused.returncode != 0, output[-3000:]
    assert "portal.E001" in output and ERROR_WORKER_REFUSED in output, output[-3000:]

    started_log = tmp_path / "started.log"
    started = start("", started_log)  # the same worker without the early import starts
    try:
        deadline = time.monotonic() + 180
        while " ready." not in started_log.read_text() and started.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        started.terminate()
        started.wait(60)
    output = started_log.read_text()
    assert " ready." in output and "portal.E00" not in output, output[-3000:]
