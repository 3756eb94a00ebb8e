"""The int8 model is exported once per CPU type and found again by the name the exporter gave it."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from knowledge import embeddings


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("avx2", "model_qint8_avx2_per_channel.onnx"),  # signed per-channel weights, faster than the preset
        ("avx512", "model_qint8_avx512.onnx"),
        ("avx512_vnni", "model_qint8_avx512_vnni.onnx"),
        ("arm64", "model_qint8_arm64.onnx"),
    ],
)
def test_quantized_file_name_follows_the_exporter(monkeypatch, target, expected):
    monkeypatch.setattr(embeddings, "_quantization_target", lambda: target)
    assert embeddings._quantized_file_name() == expected


def test_export_is_reused_on_this_cpu():
    embeddings.get_model("onnx-int8")
    folder = embeddings._onnx_cache_dir(embeddings.model_path())
    quantized = folder / "onnx" / embeddings._quantized_file_name()
    assert quantized.exists()
    before = quantized.stat().st_mtime_ns
    assert embeddings._onnx_export(embeddings.model_path()) == folder
    assert quantized.stat().st_mtime_ns == before  # found, not exported again
    vectors = embeddings.load_model("onnx-int8").encode(["refund policy"], normalize_embeddings=True)
    assert vectors.shape == (1, embeddings.EMBEDDING_DIMENSION)


def test_a_process_waiting_for_the_export_lock_reuses_what_the_holder_exported(monkeypatch, settings, tmp_path):
    """Two processes starting together (web and worker, test workers) export the model once, not twice."""
    settings.KNOWLEDGE_MODEL_CACHE_DIR = str(tmp_path)
    source = embeddings.model_path()
    target = embeddings._onnx_cache_dir(source)
    exports: list[Path] = []
    monkeypatch.setattr(embeddings, "_onnx_export_into", lambda _source, folder: exports.append(folder))
    checked = threading.Event()
    complete = embeddings._export_complete

    def spied_complete(folder: Path) -> bool:
        result = complete(folder)
        checked.set()
        return result

    monkeypatch.setattr(embeddings, "_export_complete", spied_complete)
    with embeddings._export_lock(target):  # held by "another process", which is exporting
        waiter = threading.Thread(target=embeddings._onnx_export, args=(source,))
        waiter.start()
        assert checked.wait(60)  # the waiter found no model and now queues for the lock
        (target / "onnx").mkdir(parents=True)
        for name in ("model.onnx", embeddings._quantized_file_name()):
            (target / "onnx" / name).write_bytes(b"exported by the lock holder")
    waiter.join(60)
    assert not waiter.is_alive()
    assert exports == []  # it looked again under the lock and found the holder's export


def test_without_an_export_one_is_made_under_the_lock(monkeypatch, settings, tmp_path):
    settings.KNOWLEDGE_MODEL_CACHE_DIR = str(tmp_path)
    exports: list[Path] = []
    monkeypatch.setattr(embeddings, "_onnx_export_into", lambda _source, folder: exports.append(folder))
    embeddings.prepare_model_cache("onnx-int8")
    assert exports == [embeddings._onnx_cache_dir(embeddings.model_path())]
    assert embeddings.prepare_model_cache("torch") is None


@pytest.mark.parametrize("spin", [False, True])
def test_the_onnx_threads_sleep_after_a_query_unless_told_to_spin(settings, spin):
    """Spinning threads burn about half of a web process's CPU for one query embedding (issue 22)."""
    settings.KNOWLEDGE_EMBEDDING_SPIN = spin
    model = embeddings.load_model("onnx-int8")
    options = model[0].auto_model.model.get_session_options()
    expected = "1" if spin else "0"
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == expected
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == expected
    assert len(model.encode(["refunds"])[0]) == 384


@pytest.mark.parametrize(
    "text",
    ["refund", "How many days of annual leave carry over to next year?", "word " * 600, "Ünïcödé façade 東京 😀", ""],
)
def test_one_text_takes_the_lean_path_and_gets_what_encode_gives(text):
    """A query (one text) bypasses encode()'s per-step Python but must give the same vector, long texts cut
    at the model's length and unusual characters included."""
    model = embeddings.get_model()
    assert embeddings._single_text_encoder(model) is not None
    lean = embeddings.embed_texts([text], role="query")
    assert lean.shape == (1, embeddings.EMBEDDING_DIMENSION) and lean.dtype == np.float32
    full = model.encode(embeddings.with_prefix([text], "query"), normalize_embeddings=True, convert_to_numpy=True)
    assert np.abs(lean[0] - full[0]).max() < 1e-5
    assert abs(float(np.linalg.norm(lean[0])) - 1.0) < 1e-5


def test_a_model_of_another_layout_keeps_encode():
    class Other:  # one module, not Transformer, Pooling, Normalize
        def __iter__(self):
            return iter([object()])

    assert embeddings._single_text_encoder(Other()) is None


def _counting_embed_texts(monkeypatch: pytest.MonkeyPatch, release: threading.Event | None = None) -> list[str]:
    calls: list[str] = []
    real = embeddings.embed_texts

    def counting(texts, **kwargs):
        calls.append(texts[0])
        if release is not None:
            assert release.wait(60)
        return real(texts, **kwargs)

    monkeypatch.setattr(embeddings, "embed_texts", counting)
    return calls


def test_a_query_embedded_ahead_is_waited_for_and_embedded_once(monkeypatch):
    release = threading.Event()
    calls = _counting_embed_texts(monkeypatch, release)
    text = f"parental leave rules {threading.get_ident()} {id(release)}"
    embeddings.embed_query_ahead(text)
    embeddings.embed_query_ahead(text)  # already on its way: nothing more starts
    got: list[np.ndarray] = []
    waiter = threading.Thread(target=lambda: got.append(embeddings.embed_query(text)))
    waiter.start()  # asks while the ahead thread is still embedding
    release.set()
    waiter.join(60)
    assert calls == [text] and len(got) == 1
    expected = embeddings.embed_texts([text], role="query")[0]
    assert np.abs(got[0] - expected).max() < 1e-6
    assert embeddings.embed_query(text) is got[0]  # kept: no further embedding
    assert calls == [text, text]  # the second is the `expected` computed just above


def test_a_failed_embedding_ahead_is_the_waiting_callers_error(monkeypatch):
    release = threading.Event()

    def broken(texts, **kwargs):
        assert release.wait(60)
        raise RuntimeError("onnxruntime failed")

    monkeypatch.setattr(embeddings, "embed_texts", broken)
    text = f"expense limits {id(release)}"
    embeddings.embed_query_ahead(text)
    release.set()
    with pytest.raises(RuntimeError, match="onnxruntime failed"):
        embeddings.embed_query(text)
    monkeypatch.undo()
    assert embeddings.embed_query(text).shape == (embeddings.EMBEDDING_DIMENSION,)  # nothing bad was kept
