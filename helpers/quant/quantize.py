"""Quantize a GGUF file with llama.cpp, with the checks a learner needs (introduced in notebook 08).

`quantize(src, dst, qtype)` wraps `helpers.model.export.quantize_gguf`: it rejects an unknown type, a file
that is not GGUF and a disk without room for the output BEFORE anything is written, then reports the
output's size, the time taken, the tensor types, and warns about tensors that silently fell back.
"""

from __future__ import annotations

import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from helpers.quant.gguf_file import QK_K, Fallback, NotGGUFError, check_gguf, fallback_tensors, is_k_quant

__all__ = ["QuantResult", "FallbackWarning", "NotGGUFError", "quantize", "estimate_size", "valid_types"]

# Upper bound of the bits per weight a 2-D tensor may get in each llama.cpp file type (the mixes give some
# tensors a larger type, e.g. Q4_K_M keeps some at Q6_K). Used only to check the disk before writing.
_UPPER_BPW: dict[str, float] = {
    "F16": 16.0, "Q8_0": 8.5, "Q6_K": 6.5625, "Q5_K_M": 6.5625, "Q5_K_S": 5.5, "Q5_1": 6.0, "Q5_0": 5.5,
    "Q4_K_M": 6.5625, "Q4_K_S": 5.5, "Q4_1": 5.0, "Q4_0": 4.5, "Q3_K_L": 5.5, "Q3_K_M": 4.5, "Q3_K_S": 4.5,
    "Q2_K": 4.5,
}
_SOURCE_TYPES = {"F32", "F16", "BF16"}


class FallbackWarning(UserWarning):
    """Some tensors did not get the K-quant that was asked for (row size not a multiple of 256)."""


@dataclass
class QuantResult:
    """What `quantize` did (notebook 08)."""

    path: Path
    qtype: str
    size_bytes: int
    src_bytes: int
    seconds: float
    type_counts: dict[str, int]
    fallbacks: list[Fallback] = field(default_factory=list)

    @property
    def size_mb(self) -> float:
        """Output size in MB (10**6 bytes)."""
        return self.size_bytes / 1e6

    @property
    def ratio(self) -> float:
        """Output size / source size."""
        return self.size_bytes / self.src_bytes


def valid_types() -> list[str]:
    """The quantization types `quantize` accepts (llama.cpp file types, notebook 08)."""
    from helpers.model.export import GGUF_TYPES

    return list(GGUF_TYPES)


def _check_type(qtype: str) -> str:
    key = str(qtype).upper()
    if key not in valid_types():
        raise ValueError(f"Unknown quantization type {qtype!r}. Valid types: {', '.join(valid_types())}.")
    return key


def estimate_size(src: str | Path, qtype: str) -> int:
    """An upper bound of the bytes `quantize(src, _, qtype)` writes, from the source's tensor table (notebook 08)."""
    import gguf

    key = _check_type(qtype)
    r = gguf.GGUFReader(check_gguf(src))
    total = int(r.data_offset)  # header, metadata (vocabulary included) and tensor table are copied as they are
    for t in r.tensors:
        n = int(t.n_elements)
        if len(t.shape) < 2:
            total += 4 * n  # norms stay F32
            continue
        bpw = _UPPER_BPW[key]
        if is_k_quant(key) and int(t.shape[0]) % QK_K:
            bpw = max(bpw, 8.5)  # a fallback type may be larger than the K-quant asked for
        if t.name in ("output.weight", "token_embd.weight"):
            bpw = max(bpw, 8.5)  # the mixes keep these at Q6_K or Q8_0
        total += int(n * bpw / 8) + 32  # + alignment padding
    return int(total * 1.02) + 4096


def _existing_parent(p: Path) -> Path:
    p = p.resolve().parent
    while not p.exists():
        p = p.parent
    return p


def quantize(src: str | Path, dst: str | Path, qtype: str, threads: int = 2) -> QuantResult:
    """Quantize GGUF `src` to `qtype` (Q8_0, Q4_0, Q4_K_M, ...) into `dst` with llama.cpp (notebook 08).

    Raises ValueError (unknown type, or a source that is already quantized), FileNotFoundError,
    NotGGUFError, or OSError when the disk has no room; warns (FallbackWarning) naming the tensors that
    did not get the K-quant asked for."""
    from helpers.model.export import quantize_gguf

    key = _check_type(qtype)
    src, dst = Path(src), Path(dst)
    check_gguf(src)
    if dst.exists() and dst.resolve() == src.resolve():
        raise ValueError(f"dst is the source file {src}: write the quantized model to another path.")
    import gguf

    src_types = {t.tensor_type.name for t in gguf.GGUFReader(src).tensors}
    if not src_types <= _SOURCE_TYPES:
        raise ValueError(f"{src} is already quantized ({', '.join(sorted(src_types - _SOURCE_TYPES))}): quantize "
                         "from an F32/F16 GGUF such as data/gguf/edge-slm-f16.gguf.")
    needed = estimate_size(src, key)
    free = shutil.disk_usage(_existing_parent(dst)).free
    if free < needed:
        raise OSError(f"Not enough disk space for {dst}: about {needed / 1e6:.1f} MB needed, {free / 1e6:.1f} MB "
                      "free. Free some space or choose another folder for dst.")
    import logging

    import llama_cpp._logger  # llama-cpp-python's log callback: keep llama.cpp's per-tensor log out of notebooks

    log = llama_cpp._logger.logger
    level = log.level
    log.setLevel(logging.CRITICAL + 1)  # silent; fallbacks are re-issued below as one warning with names
    try:
        t0 = time.perf_counter()
        quantize_gguf(src, dst, key, threads=threads)
        seconds = time.perf_counter() - t0
    finally:
        log.setLevel(level)
    from helpers.quant.gguf_file import type_counts

    fallbacks = fallback_tensors(dst, key)
    if fallbacks:
        names = ", ".join(f"{f.name} ({f.got})" for f in fallbacks)
        rows = sorted({f.shape[-1] for f in fallbacks})
        warnings.warn(f"{len(fallbacks)} tensors of {dst.name} did not get a K-quant although {key} was asked for, "
                      f"because their row sizes {rows} are not multiples of {QK_K}: {names}. Use model sizes "
                      f"that are multiples of {QK_K}, or a non-K type such as Q4_0.", FallbackWarning, stacklevel=2)
    return QuantResult(dst, key, dst.stat().st_size, src.stat().st_size, seconds, type_counts(dst), fallbacks)
