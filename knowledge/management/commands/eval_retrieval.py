"""Retrieval quality: BEIR datasets (nDCG@10, recall@10/@100, MRR@10), FAQ sets of paraphrased questions
against question-answer entries (the same figures), and a business QA set (file+page hit@5).

    manage.py eval_retrieval --beir ../shared/data/retrieval/scifact [--backends torch,onnx-int8] [--limit-queries N]
    manage.py eval_retrieval --faq stackExchange-FAQ.json   (StackFAQ's JSON: root.qapair[{rephr, question, answer}])
    manage.py eval_retrieval --faq query_answer_pairs.json  (CovidFAQ's pairs: [{question, answer, query_type}])
    manage.py eval_retrieval --qa ../shared/data/business_kb/contoso
    ... --latency   (also times the live search path, hybrid_search, with and without the ranker)

Every mode is reported side by side on the same legs: `lexical` (BM25), `vector`, `rrf` (naive reciprocal
rank fusion), `hybrid` (the live query-adaptive fusion) and `ranker` (the live fusion re-scored by a ranker
trained for the evaluation base on queries generated from its own chunks: the ranker's trainer is given the
knowledge base's id and nothing else, so it never sees an evaluation query).

For the QA set a result counts when it is a chunk of the cited file whose pages [page_number, page_end]
include the cited page.

Each figure is printed as `name: value`; --json prints them as one JSON object instead.
The evaluation data is loaded into its own knowledge base ("eval: <name>"), which is replaced on each run.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from knowledge import embeddings, ranking, search, services
from knowledge.bench import evaluation
from knowledge.models import Chunk
from portal.core.parallel import parallel_reads_possible
from portal.core.parameters import parameter_value

CANDIDATES = 200  # chunks per leg, enough for recall@100 over documents
MODES = ("lexical", "vector", "rrf", "hybrid", "ranker")
ERROR_NOT_MIGRATED = (
    "The database {name} is not migrated ({count} migrations not applied): run `manage.py migrate` with the same "
    "PORTAL_DB_NAME first. Nothing was embedded."
)


def _unapplied_migrations() -> int:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    return len(executor.migration_plan(executor.loader.graph.leaf_nodes()))


def rankings_by_mode(
    text: str, vector: np.ndarray, acl: search.Acl, pool: int, scorer: ranking.Scorer | None
) -> dict[str, list[tuple[int, float]]]:
    """Each mode's chunk ranking for one query, all from the same two legs. The legs and naive RRF take `pool`
    candidates (enough for recall@100); the live fusion takes the top `search_candidates` of each leg, as
    `search.hybrid_search` does, so `hybrid` and `ranker` measure what a user gets."""
    lexical = search.lexical_leg(text, acl, pool)
    rewritten = search.corrected_query(text, lexical)  # misspelt words, spelt as the base does (as live)
    if rewritten is not None:
        vector = embeddings.embed_query(rewritten)
    vectorial = search.vector_search(vector, acl, pool, ef_search=max(pool, 100))
    live = min(pool, int(parameter_value("search_candidates")))
    fused = ranking.adaptive_fuse(ranking.LexicalLeg(lexical.ranking[:live], lexical.query_weight), vectorial[:live])
    ranked = {
        "lexical": lexical.ranking,
        "vector": vectorial,
        "rrf": search.rrf_fuse([lexical.ranking, vectorial]),
        "hybrid": fused.ranking,
    }
    if scorer is not None:
        ranked["ranker"] = ranking.rerank(fused, list(search.query_terms(text)), scorer)
    return ranked


def faq_entries_from_pairs(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Question/answer pairs (CovidFAQ's layout) as StackFAQ-shaped entries: one entry per distinct answer,
    titled by its "faq" question, with the "user_query" questions given that answer as its paraphrases. An
    answer that no "faq" row names keeps an empty title."""
    entries: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        answer = str(pair["answer"]).strip()
        entry = entries.setdefault(answer, {"question": "", "answer": [answer], "rephr": []})
        question = str(pair.get("question") or "").strip()
        if pair.get("query_type") == "faq":
            entry["question"] = entry["question"] or question
        elif question and pair.get("label", 1):
            entry["rephr"].append(question)
    return list(entries.values())


class Command(BaseCommand):
    help = "Evaluate retrieval quality on a BEIR dataset or a question/answer set with cited pages."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--beir", type=Path, help="BEIR dataset folder (corpus.jsonl, queries*.jsonl, qrels/test.tsv)"
        )
        parser.add_argument("--qa", type=Path, help="folder of documents with ground_truth.jsonl")
        parser.add_argument("--faq", type=Path, help="FAQ set as StackFAQ's JSON (paraphrases of each entry)")
        parser.add_argument("--no-ranker", action="store_true", help="do not train a ranker for the evaluation base")
        parser.add_argument(
            "--signals",
            type=float,
            default=0.0,
            help="share of the queries (0-0.9) given to the ranker as helpful-answer signals (their relevant "
            "documents' chunks as what the answer cited); every mode is then measured on the other queries only",
        )
        parser.add_argument(
            "--latency", action="store_true", help="also time the live search path with and without the ranker"
        )
        parser.add_argument(
            "--limit-docs", type=int, default=0, help="use only the first N corpus documents (quick runs)"
        )
        parser.add_argument("--limit-queries", type=int, default=0)
        parser.add_argument(
            "--backends",
            default="",
            help="comma-separated embedding backends (torch,onnx,onnx-int8) to compare by exact vector nDCG@10 "
            "and encode rate; the configured backend always runs and feeds the index",
        )
        parser.add_argument(
            "--cache",
            action="store_true",
            help="keep the set's vectors under var/eval_cache and reuse them (no encode rate is then measured)",
        )
        parser.add_argument("--keep", action="store_true", help="keep the evaluation knowledge base afterwards")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if sum(bool(options.get(name)) for name in ("beir", "qa", "faq")) != 1:
            raise CommandError("Give exactly one of --beir, --faq or --qa.")
        unapplied = _unapplied_migrations()
        if unapplied:
            from django.db import connection

            raise CommandError(ERROR_NOT_MIGRATED.format(name=connection.settings_dict["NAME"], count=unapplied))
        if options["qa"]:
            figures = self._qa(options)
        elif options.get("faq"):
            figures = self._ranked_sets(*self._faq_set(options), options)
        else:
            figures = self._ranked_sets(*self._beir_set(options), options)
        if options["json"]:
            self.stdout.write(json.dumps(figures, indent=2))
        else:
            for name, value in figures.items():
                self.stdout.write(f"{name}: {value}")

    # ---- BEIR and FAQ sets ---------------------------------------------------------------------------
    def _beir_set(
        self, options: dict[str, Any]
    ) -> tuple[str, list[evaluation.CorpusDocument], list[tuple[str, str]], dict[str, dict[str, int]]]:
        folder: Path = options["beir"].resolve()
        corpus_path = folder / "corpus.jsonl"
        queries_path = next((p for p in (folder / "queries_test.jsonl", folder / "queries.jsonl") if p.exists()), None)
        qrels_path = folder / "qrels" / "test.tsv"
        if not corpus_path.exists() or queries_path is None or not qrels_path.exists():
            raise CommandError(f"{folder} is not a BEIR dataset folder.")
        qrels: dict[str, dict[str, int]] = {}
        for line in qrels_path.read_text(encoding="utf-8").splitlines()[1:]:
            query_id, doc_id, grade = line.split("\t")
            qrels.setdefault(query_id, {})[doc_id] = int(grade)
        docs = []
        with corpus_path.open(encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                docs.append(evaluation.CorpusDocument(str(row["_id"]), row.get("title", ""), row.get("text", "")))
        if options["limit_docs"]:
            keep = {doc for rel in qrels.values() for doc in rel}
            docs = [d for d in docs if d.key in keep] + [d for d in docs if d.key not in keep][: options["limit_docs"]]
        queries = []
        with queries_path.open(encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                if str(row["_id"]) in qrels:
                    queries.append((str(row["_id"]), row["text"]))
        return folder.name, docs, queries, qrels

    def _faq_set(
        self, options: dict[str, Any]
    ) -> tuple[str, list[evaluation.CorpusDocument], list[tuple[str, str]], dict[str, dict[str, int]]]:
        """A FAQ set: each entry (a question with its answers) is one document; each paraphrase of it, written by
        people, is a query whose one relevant document is the entry. Two layouts are read: StackFAQ's JSON
        (root.qapair[{question, answer, rephr}]) and a list of question/answer pairs as CovidFAQ's
        (query_answer_pairs.json: [{question, answer, query_type}], where "faq" rows are the entries and
        "user_query" rows the people's questions, tied to their entry by the answer)."""
        path: Path = options["faq"].resolve()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            entries = data["root"]["qapair"] if isinstance(data, dict) else faq_entries_from_pairs(data)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise CommandError(
                f"{path} is not a FAQ set in StackFAQ's JSON or a list of question/answer pairs "
                f"({type(error).__name__})."
            ) from None
        docs, queries, qrels = [], [], {}
        for number, entry in enumerate(entries):
            key = f"faq{number}"
            answers = entry.get("answer") or []
            answers = [answers] if isinstance(answers, str) else answers
            docs.append(evaluation.CorpusDocument(key, entry.get("question") or "", "\n\n".join(answers)))
            for index, paraphrase in enumerate(entry.get("rephr") or []):
                if paraphrase and paraphrase.strip() not in {"", "*"}:
                    queries.append((f"{key}q{index}", paraphrase.strip()))
                    qrels[f"{key}q{index}"] = {key: 1}
        return path.stem, docs, queries, qrels

    def _ranked_sets(
        self,
        name: str,
        docs: list[evaluation.CorpusDocument],
        queries: list[tuple[str, str]],
        qrels: dict[str, dict[str, int]],
        options: dict[str, Any],
    ) -> dict[str, Any]:
        if options["limit_queries"]:
            queries = queries[: options["limit_queries"]]
        figures: dict[str, Any] = {"dataset": name, "documents": len(docs), "queries": len(queries)}
        drafts = evaluation.corpus_chunk(
            docs,
            target_tokens=int(settings.KNOWLEDGE_CHUNK_TOKENS),
            overlap_tokens=int(settings.KNOWLEDGE_CHUNK_OVERLAP),
        )
        texts = [
            services.embedding_input(doc.title, draft.heading_path, draft.text)
            for doc, doc_drafts in zip(docs, drafts, strict=True)
            for draft in doc_drafts
        ]
        figures["chunks"] = len(texts)
        backend = embeddings.configured_backend()
        vectors_by_backend: dict[str, np.ndarray] = {}
        compared = [name.strip() for name in options["backends"].split(",") if name.strip()]
        for backend_name in dict.fromkeys([backend, *compared]):
            embeddings.get_model(backend_name)  # load (and export) outside the timing
            started = time.perf_counter()
            if options["cache"]:
                vectors_by_backend[backend_name] = _embed_cached(texts, backend_name, f"embedding ({backend_name})")
                continue
            vectors = _embed_all(texts, backend_name, f"embedding ({backend_name})")
            seconds = time.perf_counter() - started
            vectors_by_backend[backend_name] = vectors
            figures[f"encode_rate_{backend_name}_chunks_per_s"] = round(len(texts) / seconds, 1)

        knowledge_base = evaluation.knowledge_base_fresh(f"eval: {name}", "Evaluation corpus (eval_retrieval).")
        bar = tqdm(total=len(texts), desc="storing", unit="chunk", disable=options["json"])
        document_keys = evaluation.corpus_load(
            knowledge_base, docs, drafts, vectors=vectors_by_backend[backend], progress=bar.update
        )
        bar.close()
        chunk_to_doc = {
            chunk_id: document_keys[document_id]
            for chunk_id, document_id in Chunk.objects.filter(knowledge_base=knowledge_base).values_list(
                "id", "document_id"
            )
        }
        acl = evaluation.knowledge_base_acl(knowledge_base)
        signal_share = float(options.get("signals") or 0.0)
        if not 0.0 <= signal_share <= 0.9:
            raise CommandError("--signals is a share of the queries between 0 and 0.9.")
        signals, queries = _signal_split(queries, qrels, chunk_to_doc, signal_share)
        if signal_share:
            figures["signal_queries"], figures["measured_queries"] = len(signals), len(queries)

        def signal_source(knowledge_base_id: int) -> list[ranking.LabelledQuestion]:
            return signals if knowledge_base_id == knowledge_base.pk else []

        ranking.register_signal_source(signal_source)
        try:
            scorer = self._ranker(knowledge_base.pk, figures, options)
        finally:
            ranking.unregister_signal_source(signal_source)
        query_vectors = {
            backend_name: (
                _embed_cached([q for _, q in queries], backend_name, "queries", role="query")
                if options["cache"]
                else embeddings.embed_texts([q for _, q in queries], role="query", backend=backend_name)
            )
            for backend_name in vectors_by_backend
        }

        rankings: dict[str, list[list[str]]] = {mode: [] for mode in MODES if mode != "ranker" or scorer}
        latencies: list[float] = []
        for (_query_id, text), vector in zip(queries, query_vectors[backend], strict=True):
            started = time.perf_counter()
            ranked = rankings_by_mode(text, vector, acl, CANDIDATES, scorer)
            latencies.append((time.perf_counter() - started) * 1000)
            for mode, chunk_ranking in ranked.items():
                rankings[mode].append(evaluation.documents_ranked(chunk_ranking, chunk_to_doc))
        relevant = [qrels[query_id] for query_id, _ in queries]
        for mode, ranked_lists in rankings.items():
            for metric, function, k in (
                ("ndcg@10", evaluation.ndcg_at, 10),
                ("recall@10", evaluation.recall_at, 10),
                ("recall@100", evaluation.recall_at, 100),
                ("mrr@10", evaluation.mrr_at, 10),
            ):
                figures[f"{mode}_{metric}"] = _mean(
                    function(r, q, k) for r, q in zip(ranked_lists, relevant, strict=True)
                )
        figures["all_modes_query_p50_ms"] = round(evaluation.percentile(latencies, 50), 1)
        figures["all_modes_query_p95_ms"] = round(evaluation.percentile(latencies, 95), 1)
        if options["latency"]:
            figures.update(_live_latency([q for _, q in queries], acl))

        if compared:
            # Exact (brute-force) vector search per backend, so only the embeddings differ.
            chunk_keys = [doc.key for doc, doc_drafts in zip(docs, drafts, strict=True) for _ in doc_drafts]
            for backend_name, corpus_vectors in vectors_by_backend.items():
                scores = query_vectors[backend_name] @ corpus_vectors.T
                values = []
                for row, (query_id, _) in zip(scores, queries, strict=True):
                    order = np.argsort(-row)[:CANDIDATES]
                    ranked_docs = evaluation.documents_ranked(
                        ((int(i), float(row[i])) for i in order), dict(enumerate(chunk_keys))
                    )
                    values.append(evaluation.ndcg_at(ranked_docs, qrels[query_id], 10))
                figures[f"exact_vector_ndcg@10_{backend_name}"] = _mean(values)
        if not options["keep"]:
            evaluation.knowledge_base_drop(f"eval: {name}")
        figures["note"] = "timings on a 2-core machine shared with other work"
        return figures

    def _ranker(self, knowledge_base_id: int, figures: dict[str, Any], options: dict[str, Any]) -> Any:
        """Train the evaluation base's ranker from its own chunks (given only the base's id) and return its
        scorer, or None (no trainer registered, too few chunks, or --no-ranker)."""
        if options["no_ranker"]:
            return None
        started = time.perf_counter()
        report = ranking.ranker_train(knowledge_base_id)
        figures["ranker_training_seconds"] = round(time.perf_counter() - started, 1)
        if report is None:
            figures["ranker"] = "not trained (no trainer registered)"
            return None
        figures.update({f"ranker_{key}": value for key, value in report.items()})
        return ranking.ranker_for(knowledge_base_id)

    # ---- business QA -------------------------------------------------------------------------------
    def _qa(self, options: dict[str, Any]) -> dict[str, Any]:
        folder: Path = options["qa"].resolve()
        try:
            qa_set = evaluation.qa_folder_read(folder, options["limit_queries"])
        except FileNotFoundError as error:
            raise CommandError(str(error)) from None
        files, questions = qa_set.files, qa_set.questions
        knowledge_base = evaluation.knowledge_base_fresh(
            f"eval: {folder.name}", "Evaluation documents (eval_retrieval --qa)."
        )
        started = time.perf_counter()
        bar = tqdm(total=len(files), desc="ingesting", unit="file", disable=options["json"])
        try:
            chunks = evaluation.qa_folder_ingest(knowledge_base, files, progress=bar.update)
        except ValueError as error:
            raise CommandError(str(error)) from None
        finally:
            bar.close()
        ingest_seconds = time.perf_counter() - started
        figures: dict[str, Any] = {
            "dataset": folder.name,
            "files": len(files),
            "chunks": chunks,
            "questions": len(questions),
        }
        acl = evaluation.knowledge_base_acl(knowledge_base)
        scorer = self._ranker(knowledge_base.pk, figures, options)
        counts: dict[str, dict[str, int]] = {}
        latencies = []
        pool = int(parameter_value("search_candidates"))
        for item in questions:
            cited = re.findall(r"\[([^\]#]+?)(?:#page=(\d+))?\]", item["truth"])
            wanted = {(name.strip(), int(page) if page else None) for name, page in cited}
            started_query = time.perf_counter()
            live = search.hybrid_search(item["question"], acl, 5)
            latencies.append((time.perf_counter() - started_query) * 1000)
            by_mode = rankings_by_mode(item["question"], embeddings.embed_query(item["question"]), acl, pool, scorer)
            by_mode["live"] = live
            for mode, ranked in by_mode.items():
                for name, hit in _qa_hits(item["question"], wanted, [c for c, _ in ranked[:5]]).items():
                    counts.setdefault(mode, {}).setdefault(name, 0)
                    counts[mode][name] += int(hit)
        total = len(questions) or 1
        for mode, hits in counts.items():
            prefix = "" if mode == "live" else f"{mode}_"
            for name, value in hits.items():
                figures[f"{prefix}{name}"] = round(value / total, 3)
        figures["ingest_seconds"] = round(ingest_seconds, 1)
        figures["query_p50_ms"] = round(evaluation.percentile(latencies, 50), 1)
        if options["latency"]:
            figures.update(_live_latency([item["question"] for item in questions], acl))
        figures["note"] = "timings on a 2-core machine shared with other work"
        if not options["keep"]:
            evaluation.knowledge_base_drop(f"eval: {folder.name}")
        return figures


def _signal_split(
    queries: list[tuple[str, str]],
    qrels: dict[str, dict[str, int]],
    chunk_to_doc: dict[int, str],
    share: float,
) -> tuple[list[ranking.LabelledQuestion], list[tuple[str, str]]]:
    """`share` of the queries (by a stable hash of their id) as helpful-answer signals, positives being the
    chunks of their relevant documents; the rest to measure on. With share 0: no signals, every query."""
    if share <= 0:
        return [], queries
    import hashlib

    chunks_of: dict[str, set[int]] = {}
    for chunk_id, key in chunk_to_doc.items():
        chunks_of.setdefault(key, set()).add(chunk_id)
    signals, measured = [], []
    for query_id, text in queries:
        bucket = int(hashlib.sha256(f"signal:{query_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        if bucket < share:
            positives = {c for key, grade in qrels[query_id].items() if grade > 0 for c in chunks_of.get(key, ())}
            signals.append(ranking.LabelledQuestion(text, frozenset(positives)))
        else:
            measured.append((query_id, text))
    return signals, measured


def _qa_hits(question: str, wanted: set[tuple[str, int | None]], chunk_ids: list[int]) -> dict[str, bool]:
    """Whether the top results hold the cited file and page, counted the ways the figures name."""
    # (file, first page, last page) of each result; a chunk that runs over a page break covers both.
    rows = Chunk.objects.filter(pk__in=chunk_ids).values_list(
        "pk", "document__original_filename", "page_number", "page_end", "text", "page_starts"
    )
    found = [(name, first, last or first) for _, name, first, last, _, _ in rows]
    # the page the portal's citation links to (for a chunk over pages: the part matching the question)
    parts = {pk: (text, starts) for pk, _, _, _, text, starts in rows}
    link_pages = search.cited_pages(question, parts)
    linked = {(name, link_pages.get(pk, first)) for pk, name, first, _, _, _ in rows}
    starts = {(f, first) for f, first, _ in found}
    return {
        "cited_file_and_page_in_top5": any(_covers(found, name, page) for name, page in wanted),
        # The older, stricter count: the cited page must be the page a result starts on.
        "cited_file_and_start_page_in_top5": any((name, page) in starts for name, page in wanted if page),
        # The page a result's citation links to: for a chunk over pages, the part matching the question.
        "cited_file_and_linked_page_in_top5": any((name, page) in linked for name, page in wanted if page),
        "cited_file_in_top5": any(name in {f for f, _, _ in found} for name, _ in wanted),
        # A diagnostic, not the target: the set cites the page where its generator's chunk began, which for an
        # answer at the top of a page is often the page before; this also counts the next page.
        "diagnostic_cited_or_next_page_in_top5": any(
            _covers(found, name, page) or (page and _covers(found, name, page + 1)) for name, page in wanted
        ),
    }


def _live_latency(queries: list[str], acl: search.Acl, rounds: int = 2) -> dict[str, Any]:
    """The live search path (hybrid_search: the query's embedding, both legs in parallel where a pool allows,
    the configured candidate count, fusion, and the ranker when one is active), timed with and without the
    ranker, alternating query by query so both see the same load."""
    timings: dict[str, list[float]] = {"with_ranker": [], "without_ranker": []}
    for query in queries[:3]:  # warm-up: model, pool, caches
        search.hybrid_search(query, acl, 10)
    for _ in range(rounds):
        for query in queries:
            for name, use_ranker in (("with_ranker", True), ("without_ranker", False)):
                started = time.perf_counter()
                search.hybrid_search(query, acl, 10, ranker=use_ranker)
                timings[name].append((time.perf_counter() - started) * 1000)
    figures: dict[str, Any] = {}
    for name, values in timings.items():
        figures[f"live_{name}_p50_ms"] = round(evaluation.percentile(values, 50), 1)
        figures[f"live_{name}_p95_ms"] = round(evaluation.percentile(values, 95), 1)
    without = figures["live_without_ranker_p95_ms"]
    figures["live_p95_ratio_ranker"] = round(figures["live_with_ranker_p95_ms"] / without, 2) if without else 0.0
    figures["live_parallel_legs"] = parallel_reads_possible()
    figures["live_candidates"] = int(parameter_value("search_candidates"))
    return figures


def _covers(found: list[tuple[str, int | None, int | None]], name: str, page: int | None) -> bool:
    """Whether a result of file `name` covers `page` (any page of the file when none is cited)."""
    return any(
        file == name and (page is None or (first is not None and last is not None and first <= page <= last))
        for file, first, last in found
    )


def _embed_cached(texts: list[str], backend: str, label: str, *, role: embeddings.Role = "passage") -> np.ndarray:
    """`_embed_all`, kept under var/eval_cache by a hash of the model, the role, the backend and the texts: a
    rerun of the same set (another fusion, another ranker) does not embed it again, another model does. Only
    vectors are kept, never text."""
    import hashlib

    digest = hashlib.sha256(f"{embeddings.model_name()}|{role}|{backend}".encode())
    for text in texts:
        digest.update(hashlib.sha256(text.encode("utf-8")).digest())
    path = Path(settings.VAR_DIR) / "eval_cache" / f"{digest.hexdigest()[:32]}.npy"
    if path.exists():
        cached: np.ndarray = np.load(path)
        if cached.shape[0] == len(texts):
            return cached
    vectors = _embed_all(texts, backend, label, role=role)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def _embed_all(texts: list[str], backend: str, label: str, *, role: embeddings.Role = "passage") -> np.ndarray:
    parts = []
    step = 256
    for start in tqdm(range(0, len(texts), step), desc=label, unit="batch"):
        parts.append(embeddings.embed_texts(texts[start : start + step], role=role, backend=backend))
    return np.vstack(parts) if parts else np.zeros((0, embeddings.EMBEDDING_DIMENSION), dtype=np.float32)


def _mean(values: Any) -> float:
    items = list(values)
    return round(float(sum(items) / len(items)), 4) if items else 0.0
