from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

from django.core.management import call_command

from governance.evaluation import evaluate, load_dataset

TINY = [
    {
        "full_text": "Mail Ada Lovelace at ada@example.org or call 0490 75 40 81.",
        "spans": [
            {"entity_type": "PERSON", "entity_value": "Ada Lovelace", "start_position": 5, "end_position": 17},
            {
                "entity_type": "EMAIL_ADDRESS",
                "entity_value": "ada@example.org",
                "start_position": 21,
                "end_position": 36,
            },
            {"entity_type": "PHONE_NUMBER", "entity_value": "0490 75 40 81", "start_position": 45, "end_position": 58},
        ],
    },
    {
        "full_text": "Acme paid with 4111111111111111.",
        "spans": [
            {"entity_type": "ORGANIZATION", "entity_value": "Acme", "start_position": 0, "end_position": 4},
            {
                "entity_type": "CREDIT_CARD",
                "entity_value": "4111111111111111",
                "start_position": 15,
                "end_position": 31,
            },
        ],
    },
]


def _tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY), encoding="utf-8")
    return path


def test_it_skips_cleanly_when_the_dataset_is_absent(tmp_path: Path) -> None:
    out = StringIO()
    call_command("eval_pii", dataset=str(tmp_path / "missing.json"), stdout=out)
    assert out.getvalue().startswith("skipped: data set not found")


def test_it_scores_each_layer_and_maps_dataset_types_to_classes(tmp_path: Path) -> None:
    result = evaluate(load_dataset(_tiny(tmp_path)))
    patterns = result["layers"]["patterns"]["recall_per_type"]
    assert patterns["EMAIL_ADDRESS"]["recall"] == 1.0 and patterns["CREDIT_CARD"]["recall"] == 1.0
    assert patterns["PERSON"]["recall"] == 0.0  # names are the known-entity layer's job
    assert result["layers"]["known_entities"]["recall_per_type"]["PERSON"]["recall"] == 1.0
    assert "ORGANIZATION" not in patterns  # types without a data class are not scored
    assert result["overall"] == {"precision": 1.0, "recall": 1.0}


def test_it_prints_one_figure_per_line_and_json_on_request(tmp_path: Path) -> None:
    out = StringIO()
    call_command("eval_pii", dataset=str(_tiny(tmp_path)), stdout=out)
    lines = out.getvalue().splitlines()
    assert "validated_patterns_recall: 1.0  (target >= 0.99)" in lines
    assert any(line.startswith("combined.chars_per_second: ") for line in lines)
    out = StringIO()
    call_command("eval_pii", dataset=str(_tiny(tmp_path)), json=True, stdout=out)
    assert json.loads(out.getvalue())["known_entities_person_recall"] == 1.0


def test_the_targets_hold_on_the_presidio_research_data(shared_data: Path) -> None:
    result = evaluate(load_dataset(shared_data / "pii" / "presidio_research_synth_dataset_v2.json"))
    assert result["validated_patterns_recall"] >= 0.99
    assert result["known_entities_person_recall"] == 1.0
