from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from portal.memory.models import MemoryItem

pytestmark = pytest.mark.django_db


def test_memories_are_imported_with_the_same_review_rules(tmp_path: Path, alice: Any, sam: Any) -> None:
    path = tmp_path / "memories.csv"
    path.write_text(
        "text,kind,scope,target,sensitivity\n"
        "Warehouse opens at 6 am.,fact,organisation,,internal\n"
        "Warehouse opens at 7 am.,fact,organisation,,internal\n"
        "Staff answer the phone within three rings.,procedure,role,Staff,\n"
        ",fact,organisation,,\n"
        "Odd,opinion,organisation,,\n",
        encoding="utf-8",
    )
    out = StringIO()
    call_command("memory_import", str(path), "--username", "alice", "--json", stdout=out)
    result = json.loads(out.getvalue())
    assert (result["approved"], result["proposed"], result["rejected"]) == (2, 1, 2)
    assert [problem["line"] for problem in result["problems"]] == [5, 6]
    flagged = MemoryItem.objects.get(text="Warehouse opens at 7 am.")
    assert flagged.status == "proposed" and flagged.source == "import"
    assert flagged.flags[0]["relation"] == "contradiction"
    out = StringIO()
    path.write_text("text\nSam's idea.\n", encoding="utf-8")
    call_command("memory_import", str(path), "--username", "sam", stdout=out)
    assert "proposed: 1" in out.getvalue()
