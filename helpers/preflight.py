"""Will it fit on my machine? `python -m helpers doctor --fit MODEL.gguf` and notebook 00 answer before loading.

Introduced in notebook 00. From a GGUF file's metadata and tensor table alone (no weights are loaded) it
computes the memory a llama.cpp-style runtime needs: the weights, the KV cache for the context and parallel
sequences asked for, and a compute buffer; it compares that with the free RAM (and the free VRAM of each
NVIDIA GPU, through NVML, where one is present), checks the CPU features llama.cpp's x86 kernels use, and
estimates decode speed from the machine's measured memory bandwidth. Every figure is an estimate and says so:
the workbook measures the real ones in its notebooks.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.machine import X86_FEATURES, cpu_features  # noqa: F401 (re-exported for notebook 00)

# Types a learner can quantize to, largest first (llama.cpp's quantize names -> the ggml type of most weights).
QUANT_STEPS = (("Q8_0", "Q8_0"), ("Q6_K", "Q6_K"), ("Q5_K_M", "Q5_K"), ("Q4_K_M", "Q4_K"), ("Q3_K_M", "Q3_K"),
               ("Q2_K", "Q2_K"))
HEADROOM = 0.80  # plan to use at most this share of what is free: the OS, the notebook and the page cache need room


@dataclass(frozen=True)
class ModelSpec:
    """What the preflight needs to know about a model: read from a GGUF file, or written by hand for one you
    have not downloaded yet (tests use synthetic specs of large models)."""

    name: str
    architecture: str
    n_layers: int
    n_embd: int
    n_heads: int
    n_kv_heads: int
    n_vocab: int
    context_length: int
    weights_bytes: int
    # elements of the weight matrices (quantizable) and of everything else (norms, kept at f32 by quantize)
    matrix_elements: int
    other_elements: int = 0
    head_dim: int | None = None

    @property
    def kv_dim(self) -> int:
        """Width of one layer's K (or V) for one token: KV heads x head size (smaller than n_embd with GQA)."""
        return self.n_kv_heads * (self.head_dim or self.n_embd // self.n_heads)

    @property
    def n_params(self) -> int:
        return self.matrix_elements + self.other_elements


def spec_from_gguf(path: str | Path) -> ModelSpec:
    """Read a ModelSpec from a GGUF file's header (metadata and tensor table; no tensor data is read)."""
    from helpers.quant.gguf_file import metadata, tensor_table

    meta = metadata(path)
    arch = meta.get("general.architecture")
    if not arch:
        raise ValueError(f"{path} has no general.architecture key: not a model GGUF llama.cpp can load.")

    def key(name: str, default: Any = None) -> Any:
        value = meta.get(f"{arch}.{name}", default)
        if value is None:
            raise ValueError(f"{path} lacks the key {arch}.{name}; the preflight needs it to size the KV cache.")
        return value

    tensors = tensor_table(path)
    vocab = meta.get(f"{arch}.vocab_size")
    if vocab is None:
        emb = next((t for t in tensors if t.name == "token_embd.weight"), None)
        vocab = emb.shape[0] if emb else 0
    heads = int(key("attention.head_count"))
    return ModelSpec(
        name=Path(path).name, architecture=str(arch),
        n_layers=int(key("block_count")), n_embd=int(key("embedding_length")), n_heads=heads,
        n_kv_heads=int(key("attention.head_count_kv", heads)), n_vocab=int(vocab),
        context_length=int(key("context_length")), weights_bytes=sum(t.n_bytes for t in tensors),
        matrix_elements=sum(t.n_elements for t in tensors if len(t.shape) >= 2),
        other_elements=sum(t.n_elements for t in tensors if len(t.shape) < 2),
        head_dim=meta.get(f"{arch}.attention.key_length"))


def kv_cache_bytes(spec: ModelSpec, ctx: int, parallel: int = 1, bytes_per_value: float = 2.0) -> int:
    """K and V for every layer, for `parallel` sequences of `ctx` tokens each, stored as f16 by default."""
    return int(2 * spec.n_layers * spec.kv_dim * ctx * parallel * bytes_per_value)


def compute_buffer_bytes(spec: ModelSpec, ctx: int, parallel: int = 1, ubatch: int = 512) -> int:
    """A rough size of llama.cpp's f32 scratch for one micro-batch: logits, attention scores, activations."""
    tokens = min(ubatch, ctx * parallel)
    return int(4 * tokens * (spec.n_vocab + spec.n_heads * ctx + 4 * spec.n_embd))


def weights_bytes_as(spec: ModelSpec, ggml_type: str) -> int:
    """Weight bytes if the matrices were stored as `ggml_type` (block sizes from the `gguf` package) and the
    rest as f32. llama.cpp's mixes (the _M types) keep a few tensors at a higher type, so real files are a
    little larger."""
    import gguf

    block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[ggml_type]]
    return int(spec.matrix_elements * size / block + 4 * spec.other_elements)


def memory_bandwidth(mib: int = 256, repeats: int = 5) -> float:
    """Measured copy bandwidth in bytes/s (median of `repeats` copies of a `mib` MiB array; read + write)."""
    import numpy as np

    src = np.ones(mib * 2**20 // 8)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # touch the pages once
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t0)
    return 2 * src.nbytes / sorted(times)[len(times) // 2]


def gpus() -> list[dict[str, Any]]:
    """Free and total memory of each NVIDIA GPU through NVML (`nvidia-ml-py`), or [] when there is none."""
    from helpers.machine import nvidia_gpus

    return [{k: g[k] for k in ("index", "name", "free_bytes", "total_bytes")} for g in nvidia_gpus()[0]]


@dataclass
class FitReport:
    """The preflight's answer: what is needed, what is free, the verdict and what to do."""

    model: str
    ctx: int
    parallel: int
    weights_bytes: int
    kv_bytes: int
    compute_bytes: int
    ram_free_bytes: int
    verdict: str  # "fits", "fits with <TYPE>", "does not fit"
    advice: str
    bandwidth_bytes_s: float | None = None
    decode_tok_s_bound: float | None = None
    cpu: dict[str, bool] = field(default_factory=dict)
    gpus: list[dict[str, Any]] = field(default_factory=list)
    gpu_verdicts: list[str] = field(default_factory=list)
    smaller: dict[str, int] = field(default_factory=dict)

    @property
    def needed_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.compute_bytes

    def text(self) -> str:
        """A report a learner reads before downloading or loading anything."""
        mib = 2**20
        lines = [f"== will {self.model} fit? (ctx {self.ctx} x {self.parallel} parallel, estimates)",
                 f"weights      {self.weights_bytes / mib:10.1f} MiB",
                 f"KV cache     {self.kv_bytes / mib:10.1f} MiB  (f16 K and V, {self.ctx * self.parallel} tokens)",
                 f"compute      {self.compute_bytes / mib:10.1f} MiB  (rough)",
                 f"needed       {self.needed_bytes / mib:10.1f} MiB",
                 f"RAM free     {self.ram_free_bytes / mib:10.1f} MiB  (planning with {HEADROOM:.0%} of it)"]
        for g, v in zip(self.gpus, self.gpu_verdicts):
            lines.append(f"GPU {g['index']} {g['name']}: {g['free_bytes'] / mib:.0f} MiB free -> {v}")
        if not self.gpus:
            lines.append("GPU: none found through NVML (CPU only)")
        if self.cpu:
            have = [f for f, ok in self.cpu.items() if ok]
            missing = [f for f, ok in self.cpu.items() if not ok]
            lines.append(f"CPU features: {', '.join(have) or 'none'}" + (f" (missing: {', '.join(missing)})"
                                                                          if missing else ""))
        if self.decode_tok_s_bound:
            lines.append(f"decode bound {self.decode_tok_s_bound:10.1f} tokens/s  (one-thread copy bandwidth "
                         f"{self.bandwidth_bytes_s / 1e9:.1f} GB/s / weights: a rough CPU figure; several threads "
                         "reach more bandwidth, and models smaller than the CPU cache run faster)")
        lines += [f"verdict: {self.verdict}", f"what to do: {self.advice}"]
        return "\n".join(lines)


def _verdict(spec: ModelSpec, smaller: dict[str, int], kv: int, compute: int, budget: float,
             where: str) -> tuple[str, str]:
    """(verdict, advice) for one memory budget: as it is, with the largest quant type that fits, or not at all."""
    if spec.weights_bytes + kv + compute <= budget:
        return "fits", "load it as it is."
    fitting = [n for n, w in smaller.items() if w + kv + compute <= budget and w < spec.weights_bytes]
    if fitting:
        advice = (f"quantize to {fitting[0]} (about {smaller[fitting[0]] / 2**20:.0f} MiB of weights), or lower "
                  f"--ctx / --parallel to shrink the KV cache ({kv / 2**20:.0f} MiB now).")
        return f"fits with {fitting[0]}", advice
    return "does not fit", (f"even Q2_K with this context does not fit in {where}: choose a smaller model, lower "
                            "--ctx and --parallel, or close other programs.")


def fit(spec: ModelSpec, ctx: int | None = None, parallel: int = 1, ram_free_bytes: int | None = None,
        measure_bandwidth: bool = True, gpu_list: list[dict[str, Any]] | None = None) -> FitReport:
    """Whether `spec` fits in free RAM (and each GPU) for `parallel` sequences of `ctx` tokens (notebook 00)."""
    if parallel < 1:
        raise ValueError(f"parallel must be at least 1, got {parallel}.")
    ctx = spec.context_length if ctx is None else ctx
    if ctx < 1:
        raise ValueError(f"ctx must be a positive number of tokens, got {ctx}.")
    if ctx > spec.context_length:
        raise ValueError(f"ctx {ctx} is longer than {spec.name} was trained for ({spec.context_length} tokens): "
                         f"ask for at most {spec.context_length}.")
    if ram_free_bytes is None:
        import psutil

        ram_free_bytes = int(psutil.virtual_memory().available)
    kv, compute = kv_cache_bytes(spec, ctx, parallel), compute_buffer_bytes(spec, ctx, parallel)
    smaller = {name: weights_bytes_as(spec, ggml) for name, ggml in QUANT_STEPS}
    verdict, advice = _verdict(spec, smaller, kv, compute, HEADROOM * ram_free_bytes, "free RAM")
    gl = gpus() if gpu_list is None else gpu_list
    gpu_verdicts = [_verdict(spec, smaller, kv, compute, HEADROOM * g["free_bytes"], "free VRAM")[0] for g in gl]
    bw = memory_bandwidth() if measure_bandwidth else None
    return FitReport(model=spec.name, ctx=ctx, parallel=parallel, weights_bytes=spec.weights_bytes, kv_bytes=kv,
                     compute_bytes=compute, ram_free_bytes=ram_free_bytes, verdict=verdict, advice=advice,
                     bandwidth_bytes_s=bw, decode_tok_s_bound=(bw / spec.weights_bytes if bw else None),
                     cpu=cpu_features(), gpus=gl, gpu_verdicts=gpu_verdicts, smaller=smaller)


def fit_file(path: str | Path, ctx: int | None = None, parallel: int = 1, **kwargs: Any) -> FitReport:
    """`fit` for a GGUF file on disk (`python -m helpers doctor --fit PATH`)."""
    path = Path(os.path.expanduser(str(path)))
    return fit(spec_from_gguf(path), ctx=ctx, parallel=parallel, **kwargs)
