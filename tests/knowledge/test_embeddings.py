"""The int8 model is exported once per CPU type and found again by the name the exporter gave it."""

from __future__ import annotations

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
