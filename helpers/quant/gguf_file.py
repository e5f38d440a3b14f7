"""Read GGUF files with gguf-py: metadata, tensor table, one tensor's raw blocks (introduced in notebook 08).

`gguf` is llama.cpp's own Python package (on PyPI as `gguf`); nothing here calls llama.cpp itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

GGUF_MAGIC = b"GGUF"
QK_K = 256  # super-block size of the K-quants: a row must hold a whole number of them


class NotGGUFError(ValueError):
    """The file is not a GGUF file (its first four bytes are not b'GGUF')."""


@dataclass(frozen=True)
class TensorInfo:
    """One row of a GGUF tensor table (notebook 08). `shape` is in NumPy order: (rows, row_size)."""

    name: str
    type: str  # ggml type name: F32, F16, Q8_0, Q4_K, ...
    shape: tuple[int, ...]
    n_elements: int
    n_bytes: int

    @property
    def row_size(self) -> int:
        """Elements per row (ggml's ne0): the length a quantization block must divide."""
        return self.shape[-1]

    @property
    def bits_per_weight(self) -> float:
        """Stored bits per weight, block scales included."""
        return 8 * self.n_bytes / self.n_elements


@dataclass(frozen=True)
class Fallback:
    """A tensor that got another type than the K-quant asked for (notebook 08)."""

    name: str
    shape: tuple[int, ...]
    got: str
    requested: str
    reason: str


def check_gguf(path: str | Path) -> Path:
    """Raise FileNotFoundError / NotGGUFError unless `path` is a GGUF file (magic bytes; notebook 08)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No file at {path}: check the path (the shipped model is data/gguf/edge-slm-f16.gguf; "
                                "rebuild it with `python -m helpers export` if it is missing).")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise NotGGUFError(f"{path} is not a GGUF file: it starts with {magic!r}, not the magic bytes {GGUF_MAGIC!r}. "
                           "Convert a transformers folder with helpers.model.export.hf_to_gguf first.")
    from helpers.runtimes.gguf_check import check_gguf_file

    return check_gguf_file(path)  # a truncated file is named as such, not left to fail deep inside gguf-py


def reader(path: str | Path):
    """A `gguf.GGUFReader` on `path`, after checking the magic bytes (notebook 08)."""
    import gguf

    return gguf.GGUFReader(check_gguf(path))


def _field_value(field) -> Any:
    import gguf

    if not field.types:
        return None
    if field.types[0] == gguf.GGUFValueType.ARRAY:
        n = len(field.data)
        if n > 8:
            return f"<array of {n}>"
        return [field.contents(i) for i in range(n)]
    return field.contents()


def metadata(path: str | Path) -> dict[str, Any]:
    """The key/value metadata of a GGUF file; long arrays (the vocabulary) are summarised (notebook 08)."""
    r = reader(path)
    return {name: _field_value(f) for name, f in r.fields.items() if not name.startswith("GGUF.")}


def tensor_table(path: str | Path) -> list[TensorInfo]:
    """Every tensor of a GGUF file with its type, shape (rows, row_size) and stored bytes (notebook 08)."""
    r = reader(path)
    return [TensorInfo(t.name, t.tensor_type.name, tuple(int(s) for s in reversed(t.shape)), int(t.n_elements),
                       int(t.n_bytes)) for t in r.tensors]


def type_counts(path: str | Path) -> dict[str, int]:
    """How many tensors of each ggml type a GGUF file holds (notebook 08)."""
    counts: dict[str, int] = {}
    for t in tensor_table(path):
        counts[t.type] = counts.get(t.type, 0) + 1
    return dict(sorted(counts.items()))


def _tensor(r, name: str):
    for t in r.tensors:
        if t.name == name:
            return t
    names = ", ".join(t.name for t in r.tensors[:6])
    raise KeyError(f"No tensor {name!r} in this GGUF file; names look like: {names}, ...")


def raw_blocks(path: str | Path, name: str) -> tuple[str, np.ndarray]:
    """(type name, bytes of tensor `name` as a uint8 array of shape (n_blocks, bytes_per_block)) (notebook 08).

    For F32/F16 tensors a "block" is one value."""
    import gguf

    t = _tensor(reader(path), name)
    block_size, type_size = gguf.GGML_QUANT_SIZES[t.tensor_type]
    raw = np.asarray(t.data).view(np.uint8).reshape(-1)
    return t.tensor_type.name, raw.reshape(-1, type_size).copy()


def tensor_values(path: str | Path, name: str) -> np.ndarray:
    """Tensor `name` as float32 of shape (rows, row_size), dequantized by gguf-py's reference code (notebook 08)."""
    return _values(_tensor(reader(path), name))


def _values(t) -> np.ndarray:
    """One `gguf.ReaderTensor` as float32 of shape (rows, row_size), dequantized when it is quantized."""
    import gguf

    shape = tuple(int(s) for s in reversed(t.shape))
    if t.tensor_type in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
        return np.asarray(t.data, dtype=np.float32).reshape(shape)
    return gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32).reshape(shape)


def is_k_quant(qtype: str) -> bool:
    """True for the K-quant types and mixes (Q2_K, Q4_K_M, Q6_K, ...) (notebook 08)."""
    return "_K" in qtype.upper()


def fallback_tensors(path: str | Path, requested_type: str) -> list[Fallback]:
    """Tensors of a quantized GGUF that are not K-quants although `requested_type` is one (notebook 08).

    llama.cpp gives such a tensor another type, without an error, when its row size is not a multiple
    of 256 (a K-quant super-block). Returns [] when `requested_type` is not a K-quant."""
    if not is_k_quant(requested_type):
        return []
    out = []
    for t in tensor_table(path):
        if len(t.shape) < 2 or "_K" in t.type or t.row_size % QK_K == 0:
            continue  # 1-D norms stay F32 by design; a whole number of super-blocks could take a K-quant
        out.append(Fallback(t.name, t.shape, t.type, requested_type.upper(),
                            f"row size {t.row_size} is not a multiple of {QK_K}"))
    return out


def all_tensor_values(path: str | Path, min_dims: int = 2) -> dict[str, np.ndarray]:
    """Every tensor with at least `min_dims` dimensions as float32 (rows, row_size), read once (notebook 08)."""
    return {t.name: _values(t) for t in reader(path).tensors if len(t.shape) >= min_dims}


def write_resized_gguf(like: str | Path, out: str | Path, hidden: int, seed: int = 123) -> Path:
    """Write a random-weight f16 GGUF shaped like `like` but with hidden size `hidden` (notebook 08).

    Intermediate size becomes 3 * hidden and the head size hidden / heads; metadata and vocabulary are
    copied. A quick way to get a model whose row sizes are not multiples of 256, without PyTorch."""
    import gguf

    r = reader(like)
    meta = {name: f for name, f in r.fields.items() if not name.startswith("GGUF.")}
    arch = meta["general.architecture"].contents()
    old_h, old_ff = meta[f"{arch}.embedding_length"].contents(), meta[f"{arch}.feed_forward_length"].contents()
    heads = meta[f"{arch}.attention.head_count"].contents()
    kv_heads = meta[f"{arch}.attention.head_count_kv"].contents()
    if hidden % heads or hidden % 32:
        raise ValueError(f"hidden={hidden} must be a multiple of 32 and of the {heads} attention heads.")
    old_hd, new_hd = old_h // heads, hidden // heads
    dims = {old_h: hidden, old_ff: 3 * hidden, kv_heads * old_hd: kv_heads * new_hd}
    new_values = {f"{arch}.embedding_length": hidden, f"{arch}.feed_forward_length": 3 * hidden,
                  f"{arch}.attention.key_length": new_hd, f"{arch}.attention.value_length": new_hd,
                  f"{arch}.rope.dimension_count": new_hd}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(out, arch)
    for name, f in meta.items():
        if name == "general.architecture":
            continue
        vtype = f.types[0]
        value = new_values.get(name, f.contents())
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_key_value(name, value, vtype, sub_type=f.types[-1])
        else:
            w.add_key_value(name, value, vtype)
    rng = np.random.default_rng(seed)
    for t in r.tensors:
        shape = tuple(dims.get(int(s), int(s)) if name_dim else int(s)
                      for name_dim, s in zip([True] * len(t.shape), reversed(t.shape)))
        if t.name in ("token_embd.weight", "output.weight"):  # keep the vocabulary dimension
            shape = (int(t.shape[1]), hidden)
        if len(shape) == 1:
            w.add_tensor(t.name, np.ones(shape, np.float32))
        else:
            w.add_tensor(t.name, (rng.standard_normal(shape) * 0.02).astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out
