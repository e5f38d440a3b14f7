"""Auto-checks for lab 17 (every runtime side by side): each `check_*` raises AssertionError with a hint.

Introduced in lab 17. The learner's metrics are compared with `helpers.bench_serve` (vllm bench serve's
definitions) on fresh random piece times and fresh request sets; the measured rows are checked for
internal consistency (tokens / wall time, completed counts, percentiles in order).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from typing import Any


def _ok(msg: str) -> None:
    print(f"PASS: {msg}")


def _fresh_times(rng: random.Random) -> list[float]:
    t = rng.uniform(0.005, 0.5)
    times = [t]
    for _ in range(rng.randint(0, 30)):
        t += rng.expovariate(1 / rng.uniform(0.001, 0.05))
        times.append(t)
    return times


def check_request_metrics(fn: Callable[[list, int], dict], seed: int = 1717) -> None:
    """Lab 17, task 1: ttft, e2el, itl and tpot as vllm bench serve defines them."""
    from helpers.bench_serve import RequestRecord

    rng = random.Random(seed)
    for i in range(40):
        times = _fresh_times(rng)
        n_tokens = len(times) + rng.choice([0, 0, 3, -len(times) + 1])
        ref = RequestRecord(ok=True, ttft=times[0], e2el=times[-1], output_tokens=n_tokens,
                            itl=[b - a for a, b in itertools.pairwise(times)])
        got = fn(list(times), n_tokens)
        assert isinstance(got, dict), "return a dict with ttft, e2el, itl and tpot"
        for key in ("ttft", "e2el"):
            assert math.isclose(got[key], getattr(ref, key)), (
                f"case {i}: {key} {got[key]!r}, expected {getattr(ref, key):.6g}; ttft is the first piece's time, "
                "e2el the last one's")
        assert len(got["itl"]) == len(ref.itl) and all(math.isclose(a, b) for a, b in zip(got["itl"], ref.itl)), (
            f"case {i}: itl should be the {len(ref.itl)} gaps between consecutive pieces")
        if ref.tpot is None:
            assert got["tpot"] is None, f"case {i}: {n_tokens} token(s): tpot is None (no second token)"
        else:
            assert got["tpot"] is not None and math.isclose(got["tpot"], ref.tpot), (
                f"case {i}: tpot {got['tpot']!r}, expected {ref.tpot:.6g} = (e2el - ttft) / (n_tokens - 1); "
                "divide by the TOKENS after the first, not by the pieces")
    _ok("per-request metrics match vllm bench serve's definitions on 40 fresh streams")


def check_goodput(fn: Callable[[list, float, Any, Any], float], seed: int = 1718) -> None:
    """Lab 17, task 2: requests/s that completed and meet every SLO given."""
    from helpers.bench_serve import RequestRecord, summarize

    rng = random.Random(seed)
    for i in range(40):
        recs = []
        for _ in range(rng.randint(1, 25)):
            ok = rng.random() > 0.15
            n = rng.randint(1, 40)
            ttft = rng.uniform(0.01, 0.6)
            recs.append(RequestRecord(ok=ok, ttft=ttft if ok else None, e2el=ttft + n * rng.uniform(0.005, 0.06),
                                      output_tokens=n if ok else 0))
        wall = rng.uniform(0.5, 20)
        slo_ttft = rng.choice([None, 100.0, 250.0, 500.0])
        slo_tpot = rng.choice([None, 20.0, 40.0])
        want = summarize(recs, wall, slo_ttft, slo_tpot)["request_goodput"]
        reqs = [{"ok": r.ok, "ttft": r.ttft, "tpot": r.tpot} for r in recs]
        got = fn(reqs, wall, slo_ttft, slo_tpot)
        assert math.isclose(float(got), want, rel_tol=1e-9, abs_tol=1e-12), (
            f"case {i}: SLO TTFT {slo_ttft} ms, TPOT {slo_tpot} ms, {len(recs)} requests in {wall:.2f} s: "
            f"expected {want:.6g} good requests/s, got {got!r}; count only ok requests that meet each SLO that is "
            "not None (times are seconds, SLOs milliseconds), a request without TPOT passes the TPOT SLO")
    _ok("goodput matches on 40 fresh runs")


def check_level_rows(rows: list[dict[str, Any]], n_requests: int) -> None:
    """Lab 17, task 3: two measured rows, internally consistent."""
    assert isinstance(rows, list) and len(rows) == 2, "rows: the two run_level rows (concurrency 1 and 2)"
    assert [r["concurrency"] for r in rows] == [1, 2], "measure concurrency 1, then 2"
    for r in rows:
        assert r["completed"] + r["failed"] == n_requests, f"each level sends all {n_requests} prompts once"
        assert r["completed"] > 0, f"no request completed at concurrency {r['concurrency']}: {r.get('error')}"
        assert math.isclose(r["output_throughput"], r["total_output_tokens"] / r["duration_s"], rel_tol=1e-9), \
            "output_throughput must be total output tokens / wall time"
        assert r["p50_ttft_ms"] <= r["p99_ttft_ms"] + 1e-9 and r["p50_ttft_ms"] <= r["p50_e2el_ms"] + 1e-9, \
            "percentiles out of order: did you edit a row?"
        assert r["peak_rss_mb"] > 0, "peak memory was not sampled"
    _ok(f"two levels measured: {rows[0]['output_throughput']:.0f} and {rows[1]['output_throughput']:.0f} output "
        "tokens/s, rows consistent")
