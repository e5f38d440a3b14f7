"""Latency of streamed answers, percentiles, and the machine's CPU, memory and GPU (notebook 18).

For one streamed request, with t0 the moment the request is sent:
- time to first token (TTFT): first text delta - t0 (queue + prefill);
- end-to-end latency (E2E): last delta (the end of the stream) - t0;
- inter-token latency (ITL): the gaps between consecutive deltas, one value per gap;
- time per output token (TPOT): (E2E - TTFT) / (output tokens - 1), the decode phase per token.
Output tokens are counted with the model's own tokenizer (`data/model/tokenizer.json`), never with
`str.split()`: a word is often several tokens and punctuation is a token of its own.
"""

from __future__ import annotations

import math
import time
from itertools import pairwise
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=4)
def _tokenizer(path: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(path)


def count_tokens(text: str, tokenizer_file: str | None = None) -> int:
    """Tokens of `text` by the workbook model's tokenizer (no special tokens added)."""
    if tokenizer_file is None:
        from helpers.paths import MODEL_DIR

        tokenizer_file = str(MODEL_DIR / "tokenizer.json")
    return len(_tokenizer(tokenizer_file).encode(text, add_special_tokens=False).ids)


@dataclass
class StreamTiming:
    """What one streamed request measured (seconds), and who answered."""

    ttft: float | None
    e2e: float
    itl: list[float]
    output_tokens: int
    chunks: int
    answered_by: str
    text: str = ""
    error: str | None = None

    @property
    def tpot(self) -> float | None:
        """Time per output token after the first; None with fewer than two tokens."""
        if self.ttft is None or self.output_tokens < 2:
            return None
        return (self.e2e - self.ttft) / (self.output_tokens - 1)

    @property
    def tokens_per_second(self) -> float | None:
        """Decode speed: 1 / TPOT."""
        return None if not self.tpot else 1.0 / self.tpot


def timed_stream(runtime: Any, messages: list[dict[str, Any]], *, max_tokens: int = 64,
                 count: Callable[[str], int] = count_tokens, clock: Callable[[], float] = time.perf_counter
                 ) -> StreamTiming:
    """Stream one chat through any Runtime and time every text delta as it arrives."""
    t0 = clock()
    arrivals: list[float] = []
    text, result = "", None
    for ev in runtime.stream(messages, max_tokens=max_tokens, temperature=0.0, seed=123):
        if ev.delta:
            arrivals.append(clock())
            text += ev.delta
        if ev.result is not None:
            result = ev.result
    end = clock()
    who = result.answered_by if result is not None else f"{runtime.name}/{runtime.model}"
    err = None
    if result is not None and result.error:
        err = f"{result.error.get('type')}: {result.error.get('message')}"
    return StreamTiming(ttft=(arrivals[0] - t0) if arrivals else None, e2e=(arrivals[-1] if arrivals else end) - t0,
                        itl=[b - a for a, b in pairwise(arrivals)], output_tokens=count(text) if text else 0,
                        chunks=len(arrivals), answered_by=who, text=text, error=err)


def percentiles(values: Iterable[float], qs: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    """p50/p95/p99 (numpy's linear interpolation between the closest ranks); NaN for no values."""
    import numpy as np

    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return {f"p{q:g}": math.nan for q in qs}
    arr = np.asarray(vals, dtype=float)
    return {f"p{q:g}": float(np.percentile(arr, q)) for q in qs}


@dataclass
class LatencyReport:
    """Percentiles of TTFT, TPOT, ITL and E2E over repeated runs (seconds)."""

    runs: list[StreamTiming] = field(default_factory=list)

    def table(self) -> dict[str, dict[str, float]]:
        """metric -> {p50, p95, p99, n}."""
        cols = {"ttft": [r.ttft for r in self.runs], "tpot": [r.tpot for r in self.runs],
                "itl": [g for r in self.runs for g in r.itl], "e2e": [r.e2e for r in self.runs]}
        out = {}
        for k, vals in cols.items():
            vals = [v for v in vals if v is not None]
            out[k] = {**percentiles(vals), "n": len(vals)}
        return out

    def lines(self) -> list[str]:
        """The table as aligned text, in milliseconds."""
        rows = [f"{'metric':<6} {'n':>5} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9}"]
        for k, v in self.table().items():
            rows.append(f"{k:<6} {v['n']:>5} {v['p50'] * 1e3:>9.2f} {v['p95'] * 1e3:>9.2f} {v['p99'] * 1e3:>9.2f}")
        return rows


def measure(runtime: Any, prompts: Sequence[str], repeats: int = 1, max_tokens: int = 64,
            warmup: int = 1) -> LatencyReport:
    """Stream every prompt `repeats` times (after `warmup` untimed requests) and collect the timings."""
    for p in list(prompts)[:warmup]:
        timed_stream(runtime, [{"role": "user", "content": p}], max_tokens=max_tokens)
    rep = LatencyReport()
    for _ in range(repeats):
        for p in prompts:
            rep.runs.append(timed_stream(runtime, [{"role": "user", "content": p}], max_tokens=max_tokens))
    return rep


def process_snapshot(pid: int | None = None, interval: float = 0.2) -> dict[str, float]:
    """CPU % (of one core, over `interval` s) and resident memory of a process, with the machine's memory use."""
    import os

    import psutil

    proc = psutil.Process(pid or os.getpid())
    cpu = proc.cpu_percent(interval=interval)
    vm = psutil.virtual_memory()
    return {"pid": proc.pid, "cpu_percent": cpu, "rss_mb": proc.memory_info().rss / 1e6,
            "machine_memory_percent": vm.percent, "machine_memory_total_gb": vm.total / 1e9,
            "cpu_count": psutil.cpu_count() or 0}


def gpu_snapshot() -> dict[str, Any]:
    """GPU memory and utilisation through NVML (package `nvidia-ml-py`, module `pynvml`).

    Returns {"available": False, "reason": ...} on a machine without an NVIDIA GPU or driver, else
    {"available": True, "gpus": [{index, name, memory_used_mb, memory_total_mb, utilization_percent,
    temperature_c}]}. Run it on a GPU machine to see the other branch.
    """
    from helpers.machine import nvidia_gpus

    found, reason = nvidia_gpus()
    if reason:
        return {"available": False, "reason": reason}
    return {"available": True, "gpus": [{"index": g["index"], "name": g["name"],
                                         "memory_used_mb": g["used_bytes"] / 1e6,
                                         "memory_total_mb": g["total_bytes"] / 1e6,
                                         "utilization_percent": g["utilization_percent"],
                                         "temperature_c": g["temperature_c"]} for g in found]}
