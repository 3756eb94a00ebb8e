"""bench_assistant's floor: a bare litellm stream of the same answer, measured in a child process."""

from __future__ import annotations

import pytest

from portal.assistant.bench import assistant as bench

pytestmark = pytest.mark.django_db


def test_the_bare_litellm_figure_is_the_cpu_per_answer_of_streams_that_got_one() -> None:
    with bench.paced_provider(0.0) as url:
        figures = bench.bare_litellm(provider_url=url, streams=3)
    assert figures["bare_litellm_streams"] == 3
    assert 0 < figures["bare_litellm_cpu_ms_per_answer"] < 10_000


def test_a_provider_that_is_not_there_is_reported_not_measured() -> None:
    with bench.paced_provider(0.0) as url:
        pass  # closed: nothing answers at this address any more
    with pytest.raises(RuntimeError, match="bare litellm run failed"):
        bench.bare_litellm(provider_url=url, streams=1)
