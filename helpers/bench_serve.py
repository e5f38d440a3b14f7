"""Every runtime side by side: time to first token, time per output token, inter-token latency, end-to-end
latency, throughput and goodput at several concurrency levels, with the definitions of `vllm bench serve`.

Introduced in notebook 17; `python -m helpers bench-serve` runs it. Each request is streamed through the
runtime interface (`Runtime.stream`) and timed on the client, the way `vllm bench serve` times an HTTP
stream:
- TTFT: request sent -> first streamed text piece;
- TPOT: (E2EL - TTFT) / (output tokens - 1), per request;
- ITL: the gaps between consecutive streamed pieces (a piece can hold several tokens, so ITL != TPOT);
- E2EL: request sent -> last piece;
- output throughput = all output tokens / wall time of the run; request throughput = completed / wall time;
- goodput = requests/s of the requests that meet every SLO (TTFT and TPOT limits, as `--goodput`).
A runtime that does not stream (its `stream` yields one piece) gets TTFT = E2EL and no ITL; the table says so.
"""

from __future__ import annotations

import itertools
import json
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Self

from helpers.runtimes import RUNTIME_NAMES, Runtime, RuntimeUnavailable, get_runtime
from helpers.runtimes.base import Runtime as _BaseRuntime

BENCH_RUNTIMES = ("embedded", "llamacpp", "llamaserver", "ortgenai", "ortgenai-service", "foundry", "ollama", "vllm")
PERCENTILES = (50, 95, 99)


@dataclass
class RequestRecord:
    """One request's client-side timings (seconds) and counts."""

    ok: bool
    ttft: float | None = None
    e2el: float = 0.0
    output_tokens: int = 0
    itl: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def tpot(self) -> float | None:
        """(E2EL - TTFT) / (output tokens - 1): vllm bench serve's time per output token."""
        if self.ttft is None or self.output_tokens < 2:
            return None
        return (self.e2el - self.ttft) / (self.output_tokens - 1)


def time_request(rt: Runtime, messages: list[dict[str, Any]], max_tokens: int, seed: int = 123) -> RequestRecord:
    """Stream one chat request and time every piece on the client."""
    t0 = time.perf_counter()
    stamps: list[float] = []
    result = None
    try:
        for ev in rt.stream(messages, None, temperature=0.0, max_tokens=max_tokens, seed=seed):
            if ev.delta:
                stamps.append(time.perf_counter() - t0)
            if ev.result is not None:
                result = ev.result
    except Exception as exc:  # noqa: BLE001 (a failed request counts as failed, the run goes on)
        return RequestRecord(ok=False, e2el=time.perf_counter() - t0, error=f"{type(exc).__name__}: {exc}"[:200])
    end = time.perf_counter() - t0
    if result is not None and result.error:
        return RequestRecord(ok=False, e2el=end, error=str(result.error.get("message", result.error))[:200])
    n_out = (result.completion_tokens if result is not None else 0) or len(stamps)
    itl = [b - a for a, b in itertools.pairwise(stamps)]
    return RequestRecord(ok=True, ttft=stamps[0] if stamps else end, e2el=stamps[-1] if stamps else end,
                         output_tokens=n_out, itl=itl)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), nan for no values."""
    if not values:
        return float("nan")
    v = sorted(values)
    k = (len(v) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def summarize(records: list[RequestRecord], wall_s: float, slo_ttft_ms: float | None = None,
              slo_tpot_ms: float | None = None) -> dict[str, Any]:
    """The run's figures, named like vllm bench serve's BenchmarkMetrics (times in ms)."""
    done = [r for r in records if r.ok]
    out_tokens = sum(r.output_tokens for r in done)

    def good(r: RequestRecord) -> bool:
        ok_ttft = slo_ttft_ms is None or (r.ttft is not None and r.ttft * 1000 <= slo_ttft_ms)
        ok_tpot = slo_tpot_ms is None or r.tpot is None or r.tpot * 1000 <= slo_tpot_ms
        return ok_ttft and ok_tpot

    row: dict[str, Any] = {"completed": len(done), "failed": len(records) - len(done), "duration_s": wall_s,
                           "total_output_tokens": out_tokens,
                           "mean_output_tokens": out_tokens / len(done) if done else 0.0,
                           "request_throughput": len(done) / wall_s if wall_s else 0.0,
                           "output_throughput": out_tokens / wall_s if wall_s else 0.0,
                           "request_goodput": sum(good(r) for r in done) / wall_s if wall_s else 0.0}
    series = {"ttft": [r.ttft for r in done if r.ttft is not None], "tpot": [r.tpot for r in done if r.tpot],
              "itl": [g for r in done for g in r.itl], "e2el": [r.e2el for r in done]}
    for name, vals in series.items():
        ms = [v * 1000 for v in vals]
        row[f"mean_{name}_ms"] = statistics.fmean(ms) if ms else float("nan")
        for q in PERCENTILES:
            row[f"p{q}_{name}_ms"] = percentile(ms, q)
    if records and not done:
        row["error"] = records[0].error
    return row


class PeakMemory:
    """Peak resident memory (MB) of some processes, sampled every 20 ms while the block runs."""

    def __init__(self, pids: list[int]) -> None:
        self.pids, self.peak_mb = pids, 0.0
        self._stop = threading.Event()

    def _sample(self) -> None:
        import psutil

        procs = [psutil.Process(p) for p in self.pids]
        while not self._stop.is_set():
            try:
                self.peak_mb = max(self.peak_mb, sum(p.memory_info().rss for p in procs) / 1e6)
            except psutil.Error:
                return
            self._stop.wait(0.02)

    def __enter__(self) -> Self:
        self._t = threading.Thread(target=self._sample, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def streams(rt: Runtime) -> bool:
    """Whether a runtime streams pieces (its class overrides Runtime.stream)."""
    return type(rt).stream is not _BaseRuntime.stream


def server_pids(rt: Runtime) -> list[int]:
    """Processes whose memory a run counts: a server the runtime started, else this process."""
    import os

    proc = getattr(rt, "proc", None)
    return [proc.pid] if proc is not None and getattr(proc, "pid", None) else [os.getpid()]


def run_level(rt: Runtime, prompts: list[list[dict[str, Any]]], concurrency: int, max_tokens: int,
              slo_ttft_ms: float | None = None, slo_tpot_ms: float | None = None) -> dict[str, Any]:
    """Send every prompt once with at most `concurrency` requests in flight; the summary row.

    A runtime that runs in this process (one model object) serves one request at a time: extra requests
    wait on a lock, as they would queue in front of a single-slot server."""
    in_process = server_pids(rt) == server_pids(_NoServer())
    lock = threading.Lock() if in_process else None

    def one(msgs: list[dict[str, Any]]) -> RequestRecord:
        if lock is None:
            return time_request(rt, msgs, max_tokens)
        t_wait = time.perf_counter()
        with lock:
            waited = time.perf_counter() - t_wait
            rec = time_request(rt, msgs, max_tokens)
        if rec.ttft is not None:  # the queueing time is part of the client's wait
            rec.ttft += waited
        rec.e2el += waited
        return rec

    with PeakMemory(server_pids(rt)) as mem:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            records = list(pool.map(one, prompts))
        wall = time.perf_counter() - t0
    row = summarize(records, wall, slo_ttft_ms, slo_tpot_ms)
    row.update({"concurrency": concurrency, "peak_rss_mb": round(mem.peak_mb, 1), "streams": streams(rt),
                "in_process": in_process})
    return row


class _NoServer:
    proc = None


def open_runtime(name: str, **kwargs: Any) -> tuple[Runtime | None, str]:
    """The runtime `name`, or None and the reason it is skipped (unknown here, not running, not installed)."""
    if name not in RUNTIME_NAMES:
        return None, (f"skipped: `get_runtime` does not know {name!r} in this checkout (runtimes: " \
                     f"{', '.join(RUNTIME_NAMES)})")
    try:
        rt = get_runtime(name, **kwargs)
        _ = rt.model
        return rt, ""
    except (RuntimeUnavailable, ValueError, FileNotFoundError, ImportError, OSError) as exc:
        return None, f"skipped: {str(exc).splitlines()[0][:300]}"


def bench(names: list[str], prompts: list[list[dict[str, Any]]], levels: list[int], max_tokens: int = 32,
          warmup: int = 1, slo_ttft_ms: float | None = None, slo_tpot_ms: float | None = None,
          log: Callable[[str], None] = print,
          opened: dict[str, Runtime] | None = None) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Run every named runtime over the same prompts at each concurrency level; rows and skip reasons.
    Runtimes in `opened` are used as they are and left open (the caller closes them)."""
    rows, skipped = [], {}
    opened = opened or {}
    for name in names:
        rt, why = (opened[name], "") if name in opened else open_runtime(name)
        if rt is None:
            skipped[name] = why
            log(f"{name}: {why}")
            continue
        try:
            for msgs in prompts[:warmup]:
                time_request(rt, msgs, max_tokens)
            for c in levels:
                row = run_level(rt, prompts, c, max_tokens, slo_ttft_ms, slo_tpot_ms)
                row.update({"runtime": name, "model": rt.model})
                rows.append(row)
                log(f"answered by: {name}/{rt.model}  concurrency {c}: {row['completed']} ok, "
                    f"{row['output_throughput']:.1f} tok/s, p50 TTFT {row['p50_ttft_ms']:.1f} ms")
                first = next(r for r in rows if r["runtime"] == name)
                if row["mean_output_tokens"] < 0.8 * first["mean_output_tokens"]:
                    row["cut"] = True
                    log(f"warning: {name} at concurrency {c} answered {row['mean_output_tokens']:.1f} tokens per "
                        f"request against {first['mean_output_tokens']:.1f} at concurrency {first['concurrency']}: "
                        "answers were cut short under concurrency (same prompts, greedy decoding)")
        finally:
            if name not in opened:
                rt.close()
    return rows, skipped


def bench_prompts(n: int, seed: int = 123) -> list[list[dict[str, Any]]]:
    """`n` chat prompts the model answers in text (the dev set's no-tool requests), the same for every runtime."""
    from helpers.eval import load_cases
    from helpers.paths import EVAL_DIR

    cases = [c for c in load_cases(EVAL_DIR / "dev.jsonl") if not c.get("expected")]
    if not cases:
        raise ValueError("the dev set has no no-tool cases: run `python -m helpers export`")
    return [cases[i % len(cases)]["messages"] for i in range(n)]


def llama_bench_floor(gguf: str, threads: int, n_gen: int = 32, reps: int = 3) -> tuple[float | None, str]:
    """llama-bench's decode tokens/s (tg) for a GGUF: no HTTP, no sampling, no tokenization in the timing,
    so the floor under every runtime's cost. (None, why) when the binary is not built (notebook 11 builds it)."""
    import importlib.metadata
    import subprocess
    from pathlib import Path

    version = importlib.metadata.version("llama-cpp-python")
    exe = Path.home() / ".cache" / "edge-slm" / "llama.cpp" / version / "bin" / "llama-bench"
    if not exe.exists():
        return None, (f"llama-bench is not built at {exe}: notebook 11 (`python -m helpers build-llama-server`) "
                      "builds it")
    cmd = [str(exe), "-m", str(gguf), "-p", "0", "-n", str(n_gen), "-t", str(threads), "-r", str(reps), "-o", "json"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if res.returncode != 0:
        return None, f"llama-bench failed: {res.stderr.strip()[-300:]}"
    rows = json.loads(res.stdout)
    tg = [r for r in rows if r.get("n_gen")]
    return (float(tg[0]["avg_ts"]), f"llama-bench tg{n_gen}, {threads} thread(s), {reps} repetitions") if tg else \
        (None, "llama-bench printed no generation row")


COLUMNS = ("runtime", "concurrency", "completed", "failed", "mean_output_tokens", "output_throughput",
           "request_throughput",
           "request_goodput", "p50_ttft_ms", "p99_ttft_ms", "p50_tpot_ms", "p50_itl_ms", "p50_e2el_ms",
           "p99_e2el_ms", "peak_rss_mb")


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of bench rows."""
    head = ["runtime", "conc", "ok", "fail", "tok/req", "out tok/s", "req/s", "goodput", "TTFT p50", "TTFT p99",
            "TPOT p50",
            "ITL p50", "E2E p50", "E2E p99", "peak MB"]
    lines = ["  ".join(f"{h:>9}" for h in head)]
    for r in rows:
        cells = []
        for k in COLUMNS:
            v = r.get(k)
            cells.append(f"{v:>9}" if isinstance(v, (str, int)) and not isinstance(v, bool)
                         else f"{v:9.1f}" if isinstance(v, float) else f"{'-':>9}")
        note = "" if r.get("streams", True) else "  (no streaming: TTFT = E2E)"
        note += "  CUT SHORT" if r.get("cut") else ""
        lines.append("  ".join(cells) + note)
    return "\n".join(lines)


def cmd_bench_serve(a: Any) -> int:
    """`python -m helpers bench-serve`: the table, plus JSON with --json."""
    names = [n.strip() for n in a.runtimes.split(",") if n.strip()] if a.runtimes else list(BENCH_RUNTIMES)
    levels = [int(x) for x in a.concurrency.split(",")]
    if any(c < 1 or c > 64 for c in levels):
        raise ValueError("--concurrency takes levels between 1 and 64, e.g. 1,2,4,8")
    prompts = bench_prompts(a.requests)
    rows, skipped = bench(names, prompts, levels, max_tokens=a.max_tokens, slo_ttft_ms=a.slo_ttft_ms,
                          slo_tpot_ms=a.slo_tpot_ms)
    print(format_rows(rows))
    if a.json:
        from pathlib import Path

        Path(a.json).write_text(json.dumps({"rows": rows, "skipped": skipped}, indent=1, default=str))
        print(f"wrote {a.json}")
    return 0 if rows else 2


__all__ = [
    "PeakMemory",
    "RequestRecord",
    "asdict",
    "bench",
    "bench_prompts",
    "format_rows",
    "open_runtime",
    "percentile",
    "run_level",
    "summarize",
    "time_request",
]
