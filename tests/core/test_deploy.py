from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_check_deploy_is_clean_with_production_settings(subprocess_env: dict[str, str]) -> None:
    env = dict(
        subprocess_env, PORTAL_HTTPS="1", SECRET_KEY="x" * 20 + "-production-secret-with-enough-entropy-1234567890"
    )
    env.pop("PORTAL_DEBUG", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_debug_is_off_unless_asked_for(subprocess_env: dict[str, str]) -> None:
    env = dict(subprocess_env)
    env.pop("PORTAL_DEBUG", None)
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "False"
