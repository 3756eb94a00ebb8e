"""bench_assistant --users: the figures from what the simulated staff saw (no server, no timing)."""

from __future__ import annotations

import os

from portal.assistant.bench.load import _figures, _Record, _Run, percentile


def _run() -> _Run:
    run = _Run(window=(100.0, 110.0))
    for index in range(20):  # 20 answered in the 10 s window, 40 ms overhead each but one of 400 ms
        overhead = 400.0 if index == 0 else 40.0
        run.records.append(_Record(started=99.0 + index / 2, finished=100.5 + index / 2, first_ms=30.0,
                                   overhead_ms=overhead))  # fmt: skip
    run.records.append(_Record(started=95.0, finished=99.0, overhead_ms=40.0))  # in the ramp: not measured
    run.records.append(_Record(started=101.0, finished=102.0, error="HTTP 502"))
    run.cpu_before = {"web:1": 1.0, "web:2": 10.0, "web:3": 20.0, "database:7": 5.0}
    # 1 s in each web worker over 20 answers; the database's 0.5 s in its server process and a new backend
    run.cpu_after = {"web:1": 1.0, "web:2": 11.0, "web:3": 21.0, "database:7": 5.2, "database:8": 0.3}
    return run


def test_it_reports_the_sustained_rate_errors_and_cpu_per_question_per_process() -> None:
    figures = _figures(_run(), users=50, think=5.0, answer=5.0, web_workers=2)
    assert figures["users_w2_questions_per_s"] == 2.0
    assert figures["users_w2_errors"] == 1
    assert figures["users_w2_first_error"] == "HTTP 502"
    assert figures["users_w2_overhead_p50_ms"] == 40.0
    assert figures["users_w2_overhead_p99_ms"] == 400.0
    assert figures["users_w2_web_cpu_ms_per_question_pid2"] == 50.0
    assert figures["users_w2_web_cpu_ms_per_question_pid3"] == 50.0
    assert "users_w2_web_cpu_ms_per_question_pid1" not in figures  # the idle supervisor
    assert figures["users_w2_web_cpu_ms_per_question"] == 100.0
    assert figures["users_w2_database_cpu_ms_per_question"] == 25.0
    cores = len(os.sched_getaffinity(0))
    assert figures["users_w2_predicted_questions_per_s"] == round(cores * 1000 / 125.0, 1)


def test_percentiles_take_the_nearest_rank() -> None:
    samples = [float(value) for value in range(1, 101)]
    assert (percentile(samples, 0.5), percentile(samples, 0.95), percentile(samples, 0.99)) == (50.0, 95.0, 99.0)
    assert percentile([], 0.95) == 0.0
