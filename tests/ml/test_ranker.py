"""The retrieval ranker: trained per knowledge base on queries generated from its chunks, registered as a
versioned local model, used by the live search once active, and fusion when a base is too small."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest

from audit.models import AuditEvent
from knowledge import ranking, search
from knowledge.bench import evaluation
from knowledge.models import Chunk
from portal.ml import ranker, registry
from portal.ml.models import ModelState, ModelVersion, Purpose
from portal.ml.services import model_activate

pytestmark = pytest.mark.django_db

TOPICS = [
    ("Parking", "Staff park in the north garage. Parking permits are renewed every January at reception."),
    ("Vacation", "Employees accrue two vacation days per month. Unused vacation carries over up to ten days."),
    ("Expenses", "Travel expenses are claimed within thirty days. Receipts must be attached to every claim."),
    ("Laptops", "Laptops are replaced every three years. A broken laptop is reported to the service desk."),
    ("Canteen", "The canteen serves lunch from noon to two. Vegetarian dishes are offered every day."),
    ("Security", "Badges must be worn visibly on site. A lost badge is reported to security at once."),
    ("Training", "Every employee has a training budget. Courses are approved by the line manager."),
    ("Pension", "The pension plan matches contributions up to five percent. Enrolment is automatic."),
    ("Remote work", "Remote work is allowed two days a week. Home office equipment is reimbursed once."),
    ("Sick leave", "Sick leave is reported before nine. A doctor's note is needed after three days."),
    ("Bicycles", "Bicycle racks are behind the main building. Showers are available on the ground floor."),
    ("Printing", "Printers release jobs with the badge. Colour printing needs a cost centre code."),
    ("Meetings", "Meeting rooms are booked in the calendar. Large rooms need catering ordered a day ahead."),
    ("Onboarding", "New hires get a buddy for the first month. The onboarding checklist lists every account."),
    ("Parental leave", "Parental leave lasts sixteen weeks. It can be split into two periods within a year."),
    ("Overtime", "Overtime is paid at one and a half times the rate. It needs written approval beforehand."),
]


def _base(name: str, topics: list[tuple[str, str]]) -> Any:
    knowledge_base = evaluation.knowledge_base_fresh(name)
    docs = [evaluation.CorpusDocument(title.lower(), title, text) for title, text in topics]
    evaluation.corpus_load(knowledge_base, docs, evaluation.corpus_chunk(docs, target_tokens=200, overlap_tokens=32))
    return knowledge_base


@pytest.fixture
def tiny_base(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Sixteen one-chunk documents; the minimum lowered so this counts as big enough, and every fourth
    document held out (document ids change between runs; the split must not)."""
    monkeypatch.setattr(ranking, "MIN_CHUNKS", 10)
    titles = {title.lower(): index for index, (title, _) in enumerate(TOPICS)}
    knowledge_base = _base("ranker: tiny", TOPICS)
    order = dict(Chunk.objects.filter(knowledge_base=knowledge_base).values_list("document_id", "document__title"))
    monkeypatch.setattr(ranking, "held_out", lambda query: titles[order[query.document_id].lower()] % 4 == 0)
    ranker.provider_cache_clear()
    yield knowledge_base
    ranker.provider_cache_clear()


def test_a_ranker_is_trained_on_generated_queries_and_registered_with_its_file_hash(tiny_base: Any) -> None:
    report = ranker.retrieval_ranker_train(knowledge_base_id=tiny_base.pk)

    assert report["status"] in {"activated", "candidate (fusion is better)"}
    model = ModelVersion.objects.get(purpose=Purpose.RETRIEVAL_RANKER, knowledge_base=tiny_base)
    assert model.version == report["version"]
    data = (registry.model_dir() / model.file_name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == model.sha256
    assert model.training_data["generated_queries"] >= 20
    assert model.training_data["validation_queries"] > 0
    assert "generated" in model.training_data["source"]
    assert set(model.metrics) == {"model", "baseline"}
    assert AuditEvent.objects.filter(action="ml.model_trained", object_id=str(model.pk)).exists()
    if model.state == ModelState.CANDIDATE:
        model_activate(actor=None, model=model)
        ranker.provider_cache_clear()
    # the base as it is now has its ranker: asking again trains nothing
    assert ranker.retrieval_ranker_train(knowledge_base_id=tiny_base.pk)["status"] == "unchanged"

    scorer = ranker.scorer_for(tiny_base.pk)
    assert scorer is not None
    acl = evaluation.knowledge_base_acl(tiny_base)
    ranked = search.hybrid_search("how long does parental leave last", acl, 3, ranker=True)
    fused = search.hybrid_search("how long does parental leave last", acl, 3, ranker=False)
    assert len(ranked) == 3 and {c for c, _ in ranked} <= set(
        Chunk.objects.filter(knowledge_base=tiny_base).values_list("pk", flat=True)
    )
    assert len(fused) == 3


def test_a_base_with_too_few_chunks_keeps_fusion(monkeypatch: pytest.MonkeyPatch) -> None:
    small = _base("ranker: small", TOPICS[:3])
    report = ranker.retrieval_ranker_train(knowledge_base_id=small.pk)

    assert report["status"] == "fallback to fusion" and "at least" in report["reason"]
    assert not ModelVersion.objects.filter(purpose=Purpose.RETRIEVAL_RANKER).exists()
    assert ranker.scorer_for(small.pk) is None
    acl = evaluation.knowledge_base_acl(small)
    assert search.hybrid_search("parking permit", acl, 3) == search.hybrid_search(
        "parking permit", acl, 3, ranker=False
    )


def test_activating_one_bases_ranker_leaves_the_other_bases_ranker_active() -> None:
    first, second = _base("ranker: a", TOPICS[:2]), _base("ranker: b", TOPICS[2:4])

    def version(number: int, knowledge_base: Any, state: str) -> ModelVersion:
        return ModelVersion.objects.create(
            purpose=Purpose.RETRIEVAL_RANKER, version=number, knowledge_base=knowledge_base, state=state,
            file_name=f"r{number}.skops", sha256="0" * 64,
        )  # fmt: skip

    old_first = version(1, first, ModelState.ACTIVE)
    active_second = version(2, second, ModelState.ACTIVE)
    model_activate(actor=None, model=version(3, first, ModelState.CANDIDATE))

    old_first.refresh_from_db()
    active_second.refresh_from_db()
    assert old_first.state == ModelState.RETIRED
    assert active_second.state == ModelState.ACTIVE


def test_a_document_becoming_searchable_queues_the_retraining_of_its_base(monkeypatch: pytest.MonkeyPatch) -> None:
    from portal.ml import tasks

    monkeypatch.setattr(ranking, "MIN_CHUNKS", 2)
    queued: list[tuple[Any, ...]] = []
    monkeypatch.setattr(tasks.retrieval_ranker_train_task, "apply_async", lambda args, **_: queued.append(args))
    base = _base("ranker: queue", TOPICS[:3])
    document_id = Chunk.objects.filter(knowledge_base=base).values_list("document_id", flat=True).first()
    assert document_id is not None

    tasks.ranker_retrain_queue(document_id)
    assert queued == [(base.pk,)]
    monkeypatch.setattr(ranking, "MIN_CHUNKS", 40)
    tasks.ranker_retrain_queue(document_id)  # too small for a ranker: nothing queued
    assert queued == [(base.pk,)]


def _signals_for(knowledge_base: Any, copies: int) -> list[ranking.LabelledQuestion]:
    """People's questions about each topic (not its words), with the topic's chunk as what the answer cited."""
    chunk_of = dict(Chunk.objects.filter(knowledge_base=knowledge_base).values_list("document__title", "pk"))
    phrasings = ("what is the rule on {}", "tell me about {} please", "how does the company handle {}")
    return [
        ranking.LabelledQuestion(f"{phrasing.format(title.lower())} ({copy})", frozenset({chunk_of[title]}))
        for title, _ in TOPICS
        for phrasing in phrasings
        for copy in range(copies)
    ]


def test_questions_with_helpful_answers_train_the_ranker_and_decide_whether_it_goes_live(
    tiny_base: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    signals = _signals_for(tiny_base, copies=1)
    other_base = _base("ranker: other", TOPICS[:3])
    elsewhere = Chunk.objects.filter(knowledge_base=other_base).values_list("pk", flat=True).first()
    assert elsewhere is not None
    # a question whose cited passage is in another base teaches this base nothing
    signals.append(ranking.LabelledQuestion("what about the other base", frozenset({elsewhere})))
    monkeypatch.setattr(ranker, "MIN_REAL_VALIDATION", 5)

    def source(knowledge_base_id: int) -> list[ranking.LabelledQuestion]:
        return signals if knowledge_base_id == tiny_base.pk else []

    ranking.register_signal_source(source)
    try:
        report = ranker.retrieval_ranker_train(knowledge_base_id=tiny_base.pk)
    finally:
        ranking.unregister_signal_source(source)

    model = ModelVersion.objects.get(purpose=Purpose.RETRIEVAL_RANKER, knowledge_base=tiny_base)
    held = sum(ranking.held_out_signal(question) for question in signals[:-1])
    assert 0 < held < len(signals) - 1  # the stable split puts some on each side
    assert model.training_data["real_questions"] == report["real_questions"] == len(signals) - 1
    assert model.training_data["signal_questions_seen"] == len(signals)
    assert model.training_data["validation_real_questions"] == held
    assert model.training_data["decided_on"] == report["decided_on"] == "real questions"
    assert {"model_on_real_questions", "baseline_on_real_questions"} <= set(model.metrics)
    won = model.metrics["model_on_real_questions"]["mrr@10"] > model.metrics["baseline_on_real_questions"]["mrr@10"]
    if report["kind"] == "fusion_scale":  # the one-number model beat both fusion and the logistic ranker
        scaled = model.metrics["fusion_scale_on_real_questions"]["mrr@10"]
        won = scaled > max(model.metrics["baseline_on_real_questions"]["mrr@10"], won)
    assert (model.state == ModelState.ACTIVE) == won


def test_too_few_real_questions_leave_the_decision_to_the_generated_queries(tiny_base: Any) -> None:
    signals = _signals_for(tiny_base, copies=1)[:4]

    def source(knowledge_base_id: int) -> list[ranking.LabelledQuestion]:
        return signals

    ranking.register_signal_source(source)
    try:
        report = ranker.retrieval_ranker_train(knowledge_base_id=tiny_base.pk)
    finally:
        ranking.unregister_signal_source(source)
    assert report["decided_on"] == "generated queries" and report["real_questions"] == 4


def test_the_periodic_refresh_retrains_a_ranker_once_enough_new_signals_arrived(
    tiny_base: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from portal.ml import tasks

    signals: list[ranking.LabelledQuestion] = []

    def source(knowledge_base_id: int) -> list[ranking.LabelledQuestion]:
        return signals if knowledge_base_id == tiny_base.pk else []

    monkeypatch.setattr(ranking, "ranker_eligible_bases", lambda: [tiny_base.pk])
    ranking.register_signal_source(source)
    try:
        first = ranker.retrieval_ranker_train(knowledge_base_id=tiny_base.pk)
        model = ModelVersion.objects.get(purpose=Purpose.RETRIEVAL_RANKER, knowledge_base=tiny_base)
        if model.state != ModelState.ACTIVE:
            model_activate(actor=None, model=model)
        assert tasks.rankers_refresh_task() == {tiny_base.pk: "unchanged"}
        signals.extend(_signals_for(tiny_base, copies=1)[: ranker.SIGNALS_RETRAIN_STEP - 1])
        assert tasks.rankers_refresh_task() == {tiny_base.pk: "unchanged"}  # one short of the step
        signals.extend(_signals_for(tiny_base, copies=2)[-1:])
        assert tasks.rankers_refresh_task()[tiny_base.pk] != "unchanged"
    finally:
        ranking.unregister_signal_source(source)
    newest = ModelVersion.objects.filter(purpose=Purpose.RETRIEVAL_RANKER, knowledge_base=tiny_base).latest("version")
    assert newest.version > first["version"]
    assert newest.training_data["real_questions"] == ranker.SIGNALS_RETRAIN_STEP


def test_the_bases_big_enough_for_a_ranker_are_those_with_enough_chunks(tiny_base: Any) -> None:
    small = _base("ranker: small", TOPICS[:2])
    eligible = ranking.ranker_eligible_bases()  # MIN_CHUNKS is 10 here: sixteen chunks do, two do not
    assert tiny_base.pk in eligible and small.pk not in eligible


def test_the_live_scorer_gives_the_pipelines_decision_function_without_calling_it() -> None:
    """_linear_scorer folds the standard scaling into the logistic regression's weights: the same scores."""
    import numpy as np

    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, len(ranking.FEATURE_NAMES))) * rng.uniform(0.1, 5, len(ranking.FEATURE_NAMES))
    labels = (features[:, 0] + rng.normal(size=300) > 0).astype(float)
    columns = [ranking.FEATURE_NAMES.index(name) for name in ranking.MODEL_FEATURES]
    pipeline = ranker._fit(features[:, columns], labels)

    scores = ranker._linear_scorer(pipeline, columns)(features[:30])

    expected = pipeline.decision_function(features[:30, columns])
    np.testing.assert_allclose(scores, expected, rtol=1e-12, atol=1e-12)
    assert list(np.argsort(-scores)) == list(np.argsort(-expected))


def test_a_ranker_trained_on_the_base_as_it_is_is_not_trained_again_whether_it_went_live_or_not(
    tiny_base: Any,
) -> None:
    first = ranker.retrieval_ranker_train(knowledge_base_id=tiny_base.pk)
    assert first["status"] in {"activated", "candidate (fusion is better)"}
    # a candidate that lost to fusion would lose again on the same data: the periodic refresh leaves it
    assert ranker.retrieval_ranker_train(knowledge_base_id=tiny_base.pk) == {
        "status": "unchanged",
        "version": first["version"],
    }
    assert ModelVersion.objects.filter(purpose=Purpose.RETRIEVAL_RANKER, knowledge_base=tiny_base).count() == 1


def _synthetic_set(*, real_groups: int, generated_groups: int, seed: int = 7) -> ranking.TrainingSet:
    """Candidates of 12 rows per query. In people's questions the useful chunk is the vector leg's best and
    BM25 prefers a decoy (they paraphrase); in the generated queries BM25 is right (they quote the text)."""
    rng = np.random.default_rng(seed)
    width, column = len(ranking.FEATURE_NAMES), ranking.FEATURE_NAMES.index
    rows, labels, groups, held, real = [], [], [], [], []
    for group in range(real_groups + generated_groups):
        from_people = group < real_groups
        block = np.zeros((12, width))
        block[:, column("lexical_norm")] = rng.uniform(0.0, 0.6, 12)
        block[:, column("vector_norm")] = rng.uniform(0.0, 0.6, 12)
        block[:, column("lexical_weight")] = 0.5
        # (vector, lexical) of the useful chunk and of a decoy; fusion as it is (lexical weight 0.5) puts the
        # decoy first in both kinds, a lower lexical weight fixes people's questions, a higher the generated
        useful, decoy = ((1.0, 0.55), (0.75, 1.0)) if from_people else ((0.6, 1.0), (1.0, 0.7))
        positive = 0
        block[0, [column("vector_norm"), column("lexical_norm")]] = useful
        block[1, [column("vector_norm"), column("lexical_norm")]] = decoy
        block[:, column("fused_score")] = 0.5 * block[:, column("lexical_norm")] + 0.5 * block[:, column("vector_norm")]
        rows.append(block)
        labels.append(np.eye(12)[positive])
        groups.append(np.full(12, group))
        held.append(np.full(12, group % 3 == 0))
        real.append(np.full(12, from_people))
    return ranking.TrainingSet(
        features=np.vstack(rows),
        labels=np.concatenate(labels),
        groups=np.concatenate(groups),
        held_out=np.concatenate(held),
        queries=generated_groups,
        chunks=40,
        kinds={"sentence": generated_groups},
        signature="synthetic",
        real=np.concatenate(real),
        real_queries=real_groups,
    )


def test_a_lexical_scale_learned_from_peoples_questions_goes_live_when_it_beats_fusion_and_the_ranker(
    tiny_base: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # people paraphrase here: fusion's BM25 share puts a decoy first; the generated queries (ten times as many)
    # teach the logistic ranker the opposite, so only the one-number model fitted on people's questions helps
    monkeypatch.setattr(ranking, "training_set", lambda *_, **__: _synthetic_set(real_groups=60, generated_groups=600))
    monkeypatch.setattr(ranker, "MIN_REAL_VALIDATION", 10)
    report = ranker.retrieval_ranker_train(knowledge_base_id=tiny_base.pk, force=True)

    assert report["status"] == "activated" and report["kind"] == "fusion_scale"
    assert report["lexical_scale"] < 1.0
    assert report["fusion_scale_real_validation_mrr@10"] > report["fusion_real_validation_mrr@10"]
    assert report["fusion_scale_real_validation_mrr@10"] > report["real_validation_mrr@10"]
    model = ModelVersion.objects.get(purpose=Purpose.RETRIEVAL_RANKER, knowledge_base=tiny_base)
    assert model.state == ModelState.ACTIVE and model.parameters["lexical_scale"] == report["lexical_scale"]
    assert model.algorithm == ranker.FUSION_SCALE_ALGORITHM
    trained = AuditEvent.objects.filter(action="ml.model_trained", object_id=str(model.pk)).get()
    assert trained.details["kind"] == "fusion_scale"
    # the live search asks the registry and gets the scale, from the file whose hash the registry checks
    scorer = ranker.scorer_for(tiny_base.pk)
    assert isinstance(scorer, ranking.FusionScaleScorer) and scorer.scale == report["lexical_scale"]


def test_no_lexical_scale_goes_live_when_people_ask_as_fusion_already_ranks(
    tiny_base: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _synthetic_set(real_groups=60, generated_groups=60)
    data.real[:] = False  # no real questions: nothing to learn a scale from
    data.real_queries = 0
    monkeypatch.setattr(ranking, "training_set", lambda *_, **__: data)
    report = ranker.retrieval_ranker_train(knowledge_base_id=tiny_base.pk, force=True)
    assert report["kind"] == "logistic" and "lexical_scale" not in report


def test_the_lexical_scale_fit_follows_the_leg_that_finds_the_useful_chunk() -> None:
    data = _synthetic_set(real_groups=30, generated_groups=30)
    people, generated = data.real, ~data.real
    assert ranker._fusion_scale_fit(data.features, data.labels, data.groups, people) < 1.0
    assert ranker._fusion_scale_fit(data.features, data.labels, data.groups, generated) > 1.0
    # when every scale ranks the same, fusion stays as it is
    flat = data.features.copy()
    flat[:, ranking.FEATURE_NAMES.index("lexical_norm")] = flat[:, ranking.FEATURE_NAMES.index("vector_norm")]
    assert ranker._fusion_scale_fit(flat, data.labels, data.groups, people) == 1.0
