"""`manage.py bench_chat` measures the offline model only: it refuses a database with a catalog model."""

from __future__ import annotations

import re
import shutil
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from portal.assistant.bench import chat_page
from portal.assistant.management.commands.bench_chat import CATALOG_NOT_EMPTY
from tests.routing.factories import CatalogModelFactory

pytestmark = pytest.mark.django_db


def test_it_refuses_to_run_when_a_catalog_model_is_configured(monkeypatch: Any):
    monkeypatch.setattr(chat_page, "chromium_executable", lambda: "/usr/bin/chromium")
    CatalogModelFactory.create(display_name="Someone's cloud model")

    with pytest.raises(CommandError, match=re.escape(CATALOG_NOT_EMPTY)):
        call_command("bench_chat", "--questions", "1")


def test_it_says_chromium_is_missing(monkeypatch: Any):
    monkeypatch.setattr(shutil, "which", lambda name: None)

    with pytest.raises(CommandError, match=re.escape(chat_page.CHROMIUM_MISSING)):
        call_command("bench_chat", "--questions", "1")
