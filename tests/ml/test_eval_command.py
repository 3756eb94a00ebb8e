"""`manage.py eval_models`: one `name: value` line per figure, each learned model against its baseline."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def _figures(output: str) -> dict[str, str]:
    lines = [line for line in output.splitlines() if line.strip()]
    assert all(": " in line for line in lines), lines
    return dict(line.split(": ", 1) for line in lines)


def test_eval_models_scores_every_model_against_its_baseline_on_the_demo_data(tmp_path: Path) -> None:
    out = io.StringIO()
    call_command(
        "eval_models",
        "--demo",
        "--injection-data",
        str(tmp_path / "absent.jsonl"),
        "--contoso",
        str(tmp_path / "absent"),
        stdout=out,
        stderr=io.StringIO(),
    )
    figures = _figures(out.getvalue())
    assert float(figures["router_macro_f1_learned"]) > float(figures["router_macro_f1_keyword"])
    assert float(figures["router_cv5_macro_f1_learned"]) > float(figures["router_cv5_macro_f1_keyword"])
    assert float(figures["router_cost_per_1000_learned"]) > 0 and "router_premium_share_keyword" in figures
    assert float(figures["sensitivity_demo_macro_f1"]) > float(figures["sensitivity_demo_baseline_macro_f1"])
    for label in ("public", "internal", "confidential", "local_only"):
        assert 0 <= float(figures[f"sensitivity_demo_{label}_recall"]) <= 1
    assert figures["sensitivity_contoso"] == "skipped: data not found"
    assert figures["injection_dataset"] == "absent: own examples only"
    assert 0.5 < float(figures["injection_cv5_auc"]) <= 1
    assert float(figures["churn_macro_f1"]) > float(figures["churn_baseline_macro_f1"])
    assert float(figures["next_channel_accuracy"]) > float(figures["next_channel_baseline_accuracy"])


@pytest.mark.external_data
def test_the_injection_figures_on_the_deepset_data(shared_data: Path) -> None:
    from portal.ml.bench.evaluation import injection_figures

    figures = injection_figures(str(shared_data / "injection" / "deepset_prompt_injections.jsonl"))
    assert figures["injection_examples"] > 600
    assert figures["injection_cv5_f1"] > 0.85 and figures["injection_cv5_auc"] > 0.9


@pytest.mark.external_data
def test_the_contoso_labels_name_pages_that_exist(shared_data: Path) -> None:
    from portal.ml.bench.evaluation import contoso_passages

    texts, labels = contoso_passages(shared_data / "business_kb" / "contoso")
    assert len(texts) == len(labels) > 40
    assert all(len(text) > 100 for text in texts) and set(labels) <= {"public", "internal"}
