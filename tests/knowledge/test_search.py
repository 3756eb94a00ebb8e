from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import Group
from django.db import connection

from audit.models import AuditEvent
from audit.privacy import text_hmac
from knowledge import search, selectors
from knowledge.models import Chunk, KnowledgeBase, Posting
from tests.accounts.factories import UserFactory
from tests.knowledge.factories import KnowledgeBaseFactory, grant, ready_document

pytestmark = pytest.mark.django_db

QUERY = "bicycle repair workshop"


@pytest.fixture
def corpus(alice: Any, olivia: Any, audrey: Any, sam: Any, oscar: Any) -> dict[str, Any]:
    """Three knowledge bases: staff-wide, governance-only and ungranted; one staff doc restricted to officers."""
    staff_kb = KnowledgeBaseFactory.create(name="Staff KB")
    grant(staff_kb, "view", role="Staff")
    grant(staff_kb, "view", role="Governance officer")
    officer_kb = KnowledgeBaseFactory.create(name="Officer KB")
    grant(officer_kb, "view", role="Governance officer")
    hidden_kb = KnowledgeBaseFactory.create(name="Nobody KB")
    docs = {
        "open": ready_document(staff_kb, "open.md", b"The bicycle repair workshop opens at eight."),
        "restricted": ready_document(
            staff_kb,
            "restricted.md",
            b"Bicycle repair workshop salaries are confidential.",
            roles=["Governance officer"],
        ),
        "officer": ready_document(officer_kb, "officer.md", b"Audit of the bicycle repair workshop budget."),
        "hidden": ready_document(hidden_kb, "hidden.md", b"Secret bicycle repair workshop merger plan."),
    }
    return {"docs": docs, "staff_kb": staff_kb, "officer_kb": officer_kb, "hidden_kb": hidden_kb}


@pytest.mark.parametrize("mode", ["hybrid", "lexical", "vector"])
@pytest.mark.parametrize(
    ("person", "visible"),
    [
        ("alice", set()),  # Administrator: no grant on these bases
        ("olivia", {"open", "restricted", "officer"}),  # Governance officer
        ("audrey", set()),  # Auditor
        ("sam", {"open"}),  # Staff: the restricted document is hidden
        ("oscar", set()),  # outsider
    ],
)
def test_search_returns_exactly_the_chunks_the_user_may_read(
    corpus: dict[str, Any], request: pytest.FixtureRequest, person: str, visible: set[str], mode: str
) -> None:
    user = request.getfixturevalue(person)
    found = selectors.retrieve(user=user, query=QUERY, k=10, mode=mode, audit_event=False)
    names = {name for name, doc in corpus["docs"].items() if doc.pk in {item.document_id for item in found}}
    assert names == visible


def test_a_superuser_reads_everything(corpus: dict[str, Any]) -> None:
    root = UserFactory.create(username="root", is_superuser=True)
    found = selectors.retrieve(user=root, query=QUERY, k=10, audit_event=False)
    assert {item.document_id for item in found} == {doc.pk for doc in corpus["docs"].values()}


def test_editors_see_restricted_documents_of_their_base(corpus: dict[str, Any], sam: Any) -> None:
    grant(corpus["staff_kb"], "change", user=sam)
    found = selectors.retrieve(user=sam, query=QUERY, k=10, audit_event=False)
    assert corpus["docs"]["restricted"].pk in {item.document_id for item in found}


def test_a_user_grant_works_like_a_role_grant(corpus: dict[str, Any], oscar: Any) -> None:
    grant(corpus["hidden_kb"], "view", user=oscar)
    found = selectors.retrieve(user=oscar, query=QUERY, k=10, audit_event=False)
    assert {item.document_id for item in found} == {corpus["docs"]["hidden"].pk}


def test_retrieve_can_be_limited_to_some_knowledge_bases(corpus: dict[str, Any], olivia: Any) -> None:
    found = selectors.retrieve(user=olivia, query=QUERY, knowledge_bases=[corpus["officer_kb"]], audit_event=False)
    assert {item.knowledge_base_name for item in found} == {"Officer KB"}
    # A base the user may not view stays invisible even when asked for explicitly.
    assert selectors.retrieve(user=olivia, query=QUERY, knowledge_bases=[corpus["hidden_kb"]], audit_event=False) == []


def test_retrieve_writes_the_search_audit_event_with_chunk_ids(corpus: dict[str, Any], sam: Any) -> None:
    found = selectors.retrieve(user=sam, query=QUERY, k=5)
    event = AuditEvent.objects.filter(action="knowledge.searched").latest("seq")
    assert "query" not in event.details  # the text typed stays out of the append-only trail
    assert event.details["query_hmac"] == text_hmac(QUERY) and event.details["query_chars"] == len(QUERY)
    assert event.details["query_findings"] == {}
    assert event.details["chunk_ids"] == [item.chunk_id for item in found]
    assert event.actor_id == sam.pk


def test_retrieved_chunks_carry_citation_data(corpus: dict[str, Any], sam: Any) -> None:
    (item,) = selectors.retrieve(user=sam, query=QUERY, k=1, audit_event=False)
    assert item.document_title == "open"
    assert item.knowledge_base_name == "Staff KB"
    assert item.classification == "internal"
    assert item.url == f"/knowledge/documents/{corpus['docs']['open'].pk}/"
    assert item.score > 0


def test_the_vector_filter_still_returns_k_rows_when_most_neighbours_are_hidden(sam: Any) -> None:
    """With hnsw.iterative_scan the HNSW scan continues past filtered rows (needs the index to be used)."""
    visible_kb = KnowledgeBaseFactory.create()
    grant(visible_kb, "view", role="Staff")
    hidden_kb = KnowledgeBaseFactory.create()
    for index in range(40):
        ready_document(hidden_kb, f"h{index}.txt", f"Bicycle repair note number {index} for the workshop.".encode())
    for index in range(3):
        ready_document(visible_kb, f"v{index}.txt", f"Opening hours of shop {index}: nine to five.".encode())
    acl = search.acl_for(sam)
    query_vector = np.asarray(Chunk.objects.filter(knowledge_base=hidden_kb).first().embedding)  # type: ignore[union-attr]
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        try:
            rows = search.vector_search(query_vector, acl, 3, ef_search=10)
        finally:
            cursor.execute("SET enable_seqscan = on")
    assert len(rows) == 3
    assert set(Chunk.objects.filter(pk__in=[r[0] for r in rows]).values_list("knowledge_base_id", flat=True)) == {
        visible_kb.pk
    }


def test_bm25_scores_match_the_formula() -> None:
    kb = KnowledgeBaseFactory.create()
    texts = ["apple banana apple", "banana cherry", "cherry cherry cherry date", "elderberry fig grape"]
    for index, text in enumerate(texts):
        ready_document(kb, f"d{index}.txt", text.encode(), title=f"t{index}")
    root = UserFactory.create(username="root", is_superuser=True)
    acl = search.acl_for(root, [kb.pk])
    scores = dict(search.lexical_search("cherry apple", acl, 10))
    rows = {c.pk: c for c in Chunk.objects.filter(knowledge_base=kb)}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT chunk_count, total_length FROM knowledge_lexicalstatistics WHERE knowledge_base_id = %s", [kb.pk]
        )
        total, length = cursor.fetchone()
    average = length / total

    def expected(chunk: Chunk) -> float:
        value = 0.0
        for term in ("cherri", "appl"):
            tf = dict(Posting.objects.filter(chunk=chunk).values_list("term", "tf")).get(term, 0)
            df = Posting.objects.filter(chunk__in=list(rows.values()), term=term).count()
            if tf:
                idf = math.log(1 + (total - df + 0.5) / (df + 0.5))
                value += (
                    idf
                    * tf
                    * (search.BM25_K1 + 1)
                    / (tf + search.BM25_K1 * (1 - search.BM25_B + search.BM25_B * chunk.lexical_length / average))
                )
        return value

    assert set(scores) == {pk for pk, chunk in rows.items() if expected(chunk) > 0}
    for pk, score in scores.items():
        assert score == pytest.approx(expected(rows[pk]))
    assert not any(rows[pk].text == "elderberry fig grape" for pk in scores)


def test_snippets_escape_the_text_and_mark_the_terms(sam: Any) -> None:
    kb = KnowledgeBaseFactory.create()
    grant(kb, "view", role="Staff")
    ready_document(kb, "x.txt", b"<script>alert('x')</script> Costs < 5 & tax > 2: the workshop repairs bicycles.")
    (item,) = selectors.retrieve(user=sam, query="workshop", k=1, snippets=True, audit_event=False)
    assert "<script>" not in item.snippet_html
    assert "&lt; 5 &amp; tax &gt; 2" in item.snippet_html
    assert "<mark>workshop</mark>" in item.snippet_html
    assert item.snippet_html.replace("<mark>", "").replace("</mark>", "").count("<") == 0


def test_rrf_rewards_agreement() -> None:
    fused = search.rrf_fuse([[(1, 9.0), (2, 8.0)], [(2, 0.9), (3, 0.8)]])
    assert [chunk_id for chunk_id, _ in fused] == [2, 1, 3]


def test_restriction_groups_are_checked_in_sql_for_group_members(corpus: dict[str, Any], sam: Any) -> None:
    sam.groups.add(Group.objects.get(name="Governance officer"))
    found = selectors.retrieve(user=sam, query=QUERY, k=10, audit_event=False)
    assert corpus["docs"]["restricted"].pk in {item.document_id for item in found}


def test_a_query_is_embedded_once_and_the_shared_vector_cannot_be_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    from knowledge import embeddings

    calls: list[list[str]] = []
    real = embeddings.embed_texts

    def counting(texts: list[str], **kwargs: Any) -> Any:
        calls.append(list(texts))
        return real(texts, **kwargs)

    monkeypatch.setattr(embeddings, "embed_texts", counting)
    # the cache lives as long as the process: empty it, since an earlier run in this process (mutmut runs the
    # suite several times in one) may have embedded the same question
    with embeddings._query_cache_lock:
        embeddings._query_cache.clear()
    question = "how many days of leave do new starters get (cache test)"
    first = embeddings.embed_query(question)
    second = embeddings.embed_query(question)
    assert calls == [[question]]
    assert second is first
    with pytest.raises(ValueError):
        first[0] = 1.0
    embeddings.embed_query(question, cache=False)
    assert len(calls) == 2


def test_the_evaluation_corpus_is_searchable_by_every_leg_with_its_acl() -> None:
    """eval_retrieval's bulk loader and ACL give the same search as documents ingested one by one."""
    from knowledge.bench import evaluation

    knowledge_base = evaluation.knowledge_base_fresh("eval: tiny")
    docs = [
        evaluation.CorpusDocument("a", "Trains", "Second class train tickets are refunded for trips under six hours."),
        evaluation.CorpusDocument("b", "Hotels", "Hotels in London are paid up to 220 EUR per night."),
    ]
    keys = evaluation.corpus_load(
        knowledge_base, docs, evaluation.corpus_chunk(docs, target_tokens=200, overlap_tokens=32)
    )
    acl = evaluation.knowledge_base_acl(knowledge_base)
    for mode in ("lexical", "vector", "hybrid"):
        ranked = search.hybrid_search("London hotel price per night", acl, 2, mode=mode)
        by_document = dict(Chunk.objects.filter(pk__in=[c for c, _ in ranked]).values_list("pk", "document_id"))
        assert keys[by_document[ranked[0][0]]] == "b", mode


def test_a_chunk_over_several_pages_is_cited_by_the_page_that_matches_the_query() -> None:
    text = "Trains are preferred for short trips.\nHotels in London are paid up to 220 EUR a night."
    starts = [[0, 3], [38, 4]]
    assert search.cited_pages("London hotel limit", {7: (text, starts)}) == {7: 4}
    assert search.cited_pages("train trips", {7: (text, starts)}) == {7: 3}
    # no part matches, or a single page: left to the page the chunk starts on
    assert search.cited_pages("parking", {7: (text, starts)}) == {}
    assert search.cited_pages("London", {7: (text, [])}) == {}


def test_eval_retrieval_qa_counts_cited_pages_in_the_top_5(tmp_path: Any, settings: Any) -> None:
    """The --qa figures on a small handbook: one page per chunk, so each figure can be worked out by hand."""
    import json

    from django.core.management import call_command

    from tests.knowledge.factories import pdf_bytes

    settings.KNOWLEDGE_CHUNK_ACROSS_PAGES = False
    topics = [
        "Quarterly tax filings of the subsidiary are prepared by the finance office.",
        "The staff cafeteria opens at eight in the morning and serves breakfast until ten.",
        "Parking permits for the underground garage are issued by reception.",
        "Laptops are replaced every four years by the IT service desk.",
        "Printer toner cartridges can be ordered through the facilities portal.",
        "Hotels in London are reimbursed up to 220 EUR per night.",
        "The annual summer party takes place in the courtyard in July.",
        "New starters receive a security badge on their first day.",
        "Travel by train is preferred for trips under six hours.",
        "Fire drills are held twice a year on every floor.",
        "Passwords must be at least fourteen characters long.",
        "The pension scheme matches contributions up to five percent of salary.",
        "Plants in the office are watered by an external gardening company.",
        "Customer complaints are answered within two working days.",
        "The library lends books on software engineering and management.",
        "Bicycles may be stored in the racks behind building C.",
        "Meeting rooms are booked through the shared calendar.",
        "Overtime is compensated with time off in lieu.",
        "Visitors sign in at the front desk and wear a guest badge.",
        "Recycling bins for paper, glass and plastic are on each floor.",
    ]
    (tmp_path / "handbook.pdf").write_bytes(pdf_bytes([[topic] for topic in topics]))
    truth = [
        {"question": "When does the staff cafeteria open for breakfast?", "truth": "At eight. [handbook.pdf#page=2]"},
        {"question": "Who issues parking permits for the garage?", "truth": "Reception. [handbook.pdf#page=3]"},
        # cited by the page before the answer, as the Contoso set often does: a miss, counted by the diagnostic
        {"question": "How much may a London hotel cost per night?", "truth": "220 EUR. [handbook.pdf#page=5]"},
        {"question": "What is the weather on Mars?", "truth": "Unknown. [other.pdf#page=1]"},
    ]
    (tmp_path / "ground_truth.jsonl").write_text("\n".join(json.dumps(item) for item in truth), encoding="utf-8")
    out = io.StringIO()
    call_command("eval_retrieval", qa=tmp_path, json=True, stdout=out)
    figures = json.loads(out.getvalue())
    assert figures["files"] == 1 and figures["chunks"] == len(topics) and figures["questions"] == 4
    assert figures["cited_file_and_page_in_top5"] == 0.5
    assert figures["diagnostic_cited_or_next_page_in_top5"] == 0.75
    assert figures["cited_file_in_top5"] == 0.75
    assert not KnowledgeBase.objects.filter(name=f"eval: {tmp_path.name}").exists()  # dropped without --keep


def _record_vector_threads(monkeypatch: Any) -> list[str]:
    import threading

    threads: list[str] = []
    real = search.vector_search

    def recording(*args: Any, **kwargs: Any) -> list[tuple[int, float]]:
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(search, "vector_search", recording)
    return threads


@pytest.mark.django_db(transaction=True)
def test_hybrid_search_runs_the_vector_leg_on_a_second_connection(monkeypatch: Any, settings: Any) -> None:
    """Outside a transaction, with the connection pool, both legs run at once and rank as they do in turn."""
    assert "pool" in connection.settings_dict["OPTIONS"]
    kb = KnowledgeBaseFactory.create()
    ready_document(kb, "travel.md", b"# Travel\n\nHotels in London are paid up to 220 EUR per night.")
    ready_document(kb, "it.md", b"# IT\n\nLaptops are replaced every four years by the service desk.")
    reader = UserFactory.create()
    grant(kb, "view", user=reader)
    threads = _record_vector_threads(monkeypatch)
    query = "London hotel price per night"
    parallel = search.hybrid_search(query, search.acl_for(reader), 5)
    assert threads and threads[-1].startswith("parallel-read")
    settings.KNOWLEDGE_SEARCH_PARALLEL_LEGS = False
    sequential = search.hybrid_search(query, search.acl_for(reader), 5)
    assert threads[-1] == "MainThread"
    assert parallel == sequential and len(parallel) == 2
    # the outsider gets nothing on either path
    settings.KNOWLEDGE_SEARCH_PARALLEL_LEGS = True
    assert search.hybrid_search(query, search.acl_for(UserFactory.create()), 5) == []


def test_inside_a_transaction_both_legs_use_its_connection(kb_with_two_documents: Any, monkeypatch: Any) -> None:
    """A second connection would not see what the transaction has not committed (here: the documents)."""
    kb, reader = kb_with_two_documents
    threads = _record_vector_threads(monkeypatch)
    ranked = search.hybrid_search("London hotel price per night", search.acl_for(reader), 5)
    assert threads == ["MainThread"] and len(ranked) == 2


@pytest.fixture
def kb_with_two_documents() -> tuple[Any, Any]:
    kb = KnowledgeBaseFactory.create()
    ready_document(kb, "travel.md", b"# Travel\n\nHotels in London are paid up to 220 EUR per night.")
    ready_document(kb, "it.md", b"# IT\n\nLaptops are replaced every four years by the service desk.")
    reader = UserFactory.create()
    grant(kb, "view", user=reader)
    return kb, reader


def test_bm25_weights_come_only_from_the_knowledge_bases_searched() -> None:
    """Another knowledge base's content changes neither the scores nor, through them, what a user learns."""
    searched = KnowledgeBaseFactory.create()
    for index, text in enumerate(["Hotel rooms in Lisbon.", "Train tickets to Porto.", "Laptop repairs."]):
        ready_document(searched, f"s{index}.txt", text.encode())
    reader = UserFactory.create()
    grant(searched, "view", user=reader)
    before = search.lexical_search("hotel rooms", search.acl_for(reader), 10)
    hidden = KnowledgeBaseFactory.create()  # the reader has no access to it
    for index in range(5):
        ready_document(hidden, f"h{index}.txt", f"Hotel booking number {index} for a hotel room.".encode())
    after = search.lexical_search("hotel rooms", search.acl_for(reader), 10)
    assert before and after == before
    # a search over both (for a reader of both) weighs the term by both
    grant(hidden, "view", user=reader)
    both = dict(search.lexical_search("hotel rooms", search.acl_for(reader), 10))
    assert both[before[0][0]] < before[0][1]  # "hotel" is now common, so it weighs less


def test_the_permission_arrays_have_the_columns_type_so_postgresql_can_hash_them(
    corpus: dict[str, Any], sam: Any
) -> None:
    """bigint = ANY(integer[]) is tested element by element (two types, two hash functions): with thousands
    of restricted documents that made BM25 six times slower at a million chunks. Both arrays are bigint[]."""
    acl = search.acl_for(sam)
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN SELECT 1 FROM knowledge_posting p WHERE {acl.posting_sql}", acl.params)  # noqa: S608
        plan = " ".join(row[0] for row in cursor.fetchall())
    assert "::bigint[]" in plan and "::integer[]" not in plan and "::smallint[]" not in plan
    assert search.vector_search(np.ones(384, dtype=np.float32) / np.sqrt(384), acl, 5)  # still a valid statement


def test_the_hnsw_beam_widens_with_the_corpus_and_the_scan_with_the_filter() -> None:
    configured = 100
    at_reference = search.scan_settings_for(100_000, 45_000, 50, configured)
    assert at_reference == search.ScanSettings(configured, search.MAX_SCAN_TUPLES_DEFAULT)  # as configured
    assert search.scan_settings_for(10_000, 10_000, 50, configured) == at_reference
    at_million = search.scan_settings_for(1_000_000, 450_000, 50, configured)
    assert configured * 6 < at_million.ef_search <= search.EF_SEARCH_MAX
    assert search.scan_settings_for(10_000_000, 4_500_000, 50, configured).ef_search == search.EF_SEARCH_MAX
    assert search.scan_settings_for(1_000, 1_000, 200, configured).ef_search == 200  # never below the rows asked
    # one small base among a million chunks: walking 20,000 tuples would find about 20 of its rows
    selective = search.scan_settings_for(1_000_000, 1_000, 50, configured)
    assert selective.max_scan_tuples >= 50 * 1_000_000 // 1_000
    assert search.scan_settings_for(1_000_000, 1, 50, configured).max_scan_tuples == search.MAX_SCAN_TUPLES_MAX


def test_the_vector_leg_sets_its_beam_for_the_corpus_in_its_own_transaction(
    corpus: dict[str, Any], olivia: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.test.utils import CaptureQueriesContext

    acl = search.acl_for(olivia)
    query_vector = np.asarray(Chunk.objects.filter(document=corpus["docs"]["open"]).first().embedding)  # type: ignore[union-attr]
    monkeypatch.setattr(search, "_corpus_sizes", (-math.inf, {}))
    plain = search.vector_search(query_vector, acl, 3)
    # the same corpus seen as if it were large: a wider beam, set with SET LOCAL around the leg's statement
    monkeypatch.setattr(search, "EF_SEARCH_REFERENCE_CHUNKS", 1)
    expected = search.vector_scan_settings(acl, 3)
    assert expected.ef_search > 100
    with CaptureQueriesContext(connection) as captured:
        wide = search.vector_search(query_vector, acl, 3)
    statements = [query["sql"] for query in captured.captured_queries]
    assert f"SET LOCAL hnsw.ef_search = {expected.ef_search}" in statements
    assert f"SET LOCAL hnsw.max_scan_tuples = {expected.max_scan_tuples}" in statements
    assert [chunk_id for chunk_id, _ in wide] == [chunk_id for chunk_id, _ in plain]
