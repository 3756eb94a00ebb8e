"""`manage.py eval_models`: every local model trained on the current data, scored on held-out data
against its baseline (nothing is written to the registry).

Figures (one `name: value` each):
- task router: macro-F1 of the learned router and of the keyword classifier on the same held-out split
  (and 5-fold cross-validated), premium share and cost per 1,000 questions at catalog prices for each
  and for the true labels;
- sensitivity: per-class precision/recall on the held-out split of the demo corpus, and on the Contoso
  pages labelled by this project (data/contoso_sensitivity_labels.tsv), when that data is present;
- injection: 5-fold cross-validated F1 and ROC AUC;
- customer predictions: macro-F1, accuracy (and AUC for churn) against the majority class;
- prediction latency of the task router, with the question's embedding computed and with it cached.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from portal.ml import training
from portal.ml.metrics import classification_metrics
from portal.ml.models import Purpose

CONTOSO_LABELS = Path(__file__).resolve().parent.parent / "data" / "contoso_sensitivity_labels.tsv"
PASSAGE_CHARS = 1500  # a page is scored on its first 1,500 characters, about one chunk's worth more than a chunk


def _silent(percent: int, stage: str) -> None:
    return None


def _per_class(prefix: str, metrics: dict[str, Any], figures: dict[str, Any]) -> None:
    for label, values in metrics["per_class"].items():
        figures[f"{prefix}_{label}_precision"] = values["precision"]
        figures[f"{prefix}_{label}_recall"] = values["recall"]
        figures[f"{prefix}_{label}_support"] = values["support"]


def router_figures(log: Callable[[str], None]) -> dict[str, Any]:
    from portal.routing.classifier import classify
    from portal.routing.types import TASK_TYPES

    started = time.perf_counter()
    trained = training.train(purpose=Purpose.TASK_ROUTER, parameters={}, progress=_silent)
    metrics = trained.metrics
    figures: dict[str, Any] = {
        "router_examples": trained.training_data["examples"],
        "router_heldout_questions": metrics["split"]["test"],
        "router_macro_f1_learned": metrics["model"]["macro_f1"],
        "router_macro_f1_keyword": metrics["baseline"]["macro_f1"],
        "router_accuracy_learned": metrics["model"]["accuracy"],
        "router_accuracy_keyword": metrics["baseline"]["accuracy"],
        "router_ece_learned": metrics["model"]["calibration"]["ece"],
        "router_train_seconds": round(time.perf_counter() - started, 2),
    }
    for name, routing in (
        ("learned", metrics["model"]["routing"]),
        ("keyword", metrics["baseline"]["routing"]),
        ("true_labels", metrics["truth_routing"]),
    ):
        figures[f"router_premium_share_{name}"] = routing["premium_share"]
        figures[f"router_cost_per_1000_{name}"] = routing["cost_per_1000"]
    prices = training.tier_prices()
    figures["router_price_models"] = ", ".join(f"{tier}={value['model']}" for tier, value in prices.items())
    figures["router_assumed_tokens_in_out"] = f"{training.TOKENS_IN_PER_QUESTION}/{training.TOKENS_OUT_PER_QUESTION}"
    log("task router: cross-validating…")
    dataset = training.task_router_dataset()
    from portal.ml import features

    dataset.embeddings = features.embed(dataset.texts)
    kept = training._check_enough(dataset, TASK_TYPES)
    dataset = training._keep(dataset, kept)
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    learned_scores, keyword_scores = [], []
    for train_rows, test_rows in StratifiedKFold(5, shuffle=True, random_state=training.SEED).split(
        dataset.texts, dataset.labels
    ):
        artifact = training._fit_text(dataset, train_rows, kept, char_ngrams=False)
        assert dataset.embeddings is not None
        probabilities = training.text_predict(
            artifact, [dataset.texts[i] for i in test_rows], dataset.embeddings[test_rows]
        )
        predicted = [kept[int(row.argmax())] for row in probabilities]
        truth = [dataset.labels[i] for i in test_rows]
        learned_scores.append(f1_score(truth, predicted, labels=kept, average="macro", zero_division=0))
        keyword = [classify(dataset.texts[i]).task_type for i in test_rows]
        keyword_scores.append(f1_score(truth, keyword, labels=kept, average="macro", zero_division=0))
    figures["router_cv5_macro_f1_learned"] = round(float(np.mean(learned_scores)), 4)
    figures["router_cv5_macro_f1_keyword"] = round(float(np.mean(keyword_scores)), 4)
    figures.update(_router_latency(trained.artifact, dataset.texts[:200]))
    return figures


def _router_latency(artifact: dict[str, Any], questions: list[str]) -> dict[str, Any]:
    """Milliseconds per prediction: with the embedding computed (cold), and with it cached, as in a
    question, where retrieval needs the same embedding and gets it from the cache."""
    from knowledge import embeddings
    from portal.ml import features

    cold, warm = [], []
    for question in questions:
        started = time.perf_counter()
        vector = embeddings.embed_query(question.strip()[: features.MAX_QUERY_CHARS], cache=False)[None, :]
        training.text_predict(artifact, [question], vector)
        cold.append((time.perf_counter() - started) * 1000)
        embeddings.embed_query(question.strip()[: features.MAX_QUERY_CHARS])
        started = time.perf_counter()
        training.text_predict(artifact, [question], features.embed([question], query=True))
        warm.append((time.perf_counter() - started) * 1000)

    def p95(values: list[float]) -> float:
        ordered = sorted(values)
        return round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 3)

    return {
        "router_predict_cached_embedding_p50_ms": round(statistics.median(warm), 3),
        "router_predict_cached_embedding_p95_ms": p95(warm),
        "router_predict_with_embedding_p50_ms": round(statistics.median(cold), 3),
        "router_predict_with_embedding_p95_ms": p95(cold),
    }


def sensitivity_figures(contoso: Path | None, log: Callable[[str], None]) -> dict[str, Any]:
    started = time.perf_counter()
    trained = training.train(purpose=Purpose.SENSITIVITY, parameters={}, progress=_silent)
    metrics = trained.metrics
    figures: dict[str, Any] = {
        "sensitivity_demo_passages": trained.training_data["examples"],
        "sensitivity_demo_heldout": metrics["split"]["test"],
        "sensitivity_demo_macro_f1": metrics["model"]["macro_f1"],
        "sensitivity_demo_baseline_macro_f1": metrics["baseline"]["macro_f1"],
        "sensitivity_train_seconds": round(time.perf_counter() - started, 2),
    }
    _per_class("sensitivity_demo", metrics["model"], figures)
    if contoso is None or not contoso.is_dir():
        figures["sensitivity_contoso"] = "skipped: data not found"
        return figures
    log("sensitivity: scoring the labelled Contoso pages…")
    texts, labels = contoso_passages(contoso)
    probabilities = training.text_predict(trained.artifact, texts, None)
    predicted = [trained.artifact["labels"][int(row.argmax())] for row in probabilities]
    scored = classification_metrics(labels, predicted, list(training.SENSITIVITY_LABELS))
    figures["sensitivity_contoso_passages"] = len(texts)
    figures["sensitivity_contoso_accuracy"] = scored["accuracy"]
    _per_class("sensitivity_contoso", scored, figures)
    return figures


def contoso_passages(folder: Path) -> tuple[list[str], list[str]]:
    """The labelled pages' text, read from the Contoso files (this repository holds only the labels)."""
    import pypdfium2

    texts, labels = [], []
    documents: dict[str, Any] = {}
    for line in CONTOSO_LABELS.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        file_name, page, label = line.split("\t")
        path = folder / file_name
        if path.suffix == ".md":
            sections = path.read_text(encoding="utf-8").split("\n## ")[1:]
            text = sections[int(page) - 1]
        else:
            if file_name not in documents:
                documents[file_name] = pypdfium2.PdfDocument(str(path))
            text = documents[file_name][int(page) - 1].get_textpage().get_text_range()
        texts.append(" ".join(text.split())[:PASSAGE_CHARS])
        labels.append(label)
    return texts, labels


def injection_figures(dataset_path: str | None) -> dict[str, Any]:
    started = time.perf_counter()
    dataset = training.injection_dataset(dataset_path)
    cross_validation = training.injection_cross_validation(dataset)
    return {
        "injection_examples": len(dataset.labels),
        "injection_sources": ", ".join(f"{name}={count}" for name, count in sorted(dataset.sources.items())),
        "injection_cv5_f1": cross_validation["f1_mean"],
        "injection_cv5_f1_std": cross_validation["f1_std"],
        "injection_cv5_auc": cross_validation["auc_mean"],
        "injection_cv5_auc_std": cross_validation["auc_std"],
        "injection_cv_seconds": round(time.perf_counter() - started, 2),
    }


def customer_figures() -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for purpose, prefix in ((Purpose.CUSTOMER_CHURN, "churn"), (Purpose.CUSTOMER_NEXT_CHANNEL, "next_channel")):
        started = time.perf_counter()
        try:
            trained = training.train(purpose=purpose, parameters={}, progress=_silent)
        except training.NotEnoughData as error:
            figures[f"{prefix}"] = f"not trained: {error}"
            continue
        metrics = trained.metrics
        figures[f"{prefix}_examples"] = trained.training_data["examples"]
        figures[f"{prefix}_heldout"] = metrics["split"]["test"]
        figures[f"{prefix}_macro_f1"] = metrics["model"]["macro_f1"]
        figures[f"{prefix}_baseline_macro_f1"] = metrics["baseline"]["macro_f1"]
        figures[f"{prefix}_accuracy"] = metrics["model"]["accuracy"]
        figures[f"{prefix}_baseline_accuracy"] = metrics["baseline"]["accuracy"]
        if metrics["model"].get("auc") is not None:
            figures[f"{prefix}_auc"] = metrics["model"]["auc"]
        figures[f"{prefix}_train_seconds"] = round(time.perf_counter() - started, 2)
    return figures


def demo_data_ensure() -> None:
    """The demo data the evaluation needs, on a database of its own (`eval_models --demo`)."""
    from knowledge.demo import demo_knowledge_ensure
    from knowledge.models import Document, DocumentStatus
    from knowledge.services import document_process
    from portal.celery import app
    from portal.customers.demo import demo_customers_ensure
    from portal.ml import demo, services

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True  # ingestion runs in this process, never through the broker
    try:
        demo_knowledge_ensure()
        demo.demo_knowledge_bases_ensure()
    finally:
        app.conf.task_always_eager = previous
    for document in Document.objects.exclude(status=DocumentStatus.READY):
        document_process(document_id=document.pk, generation=document.generation)
    demo_customers_ensure()
    services.demo_task_labels_ensure(examples=demo.task_examples())
