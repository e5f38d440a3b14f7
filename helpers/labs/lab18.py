"""Auto-checks for lab 18 (health and latency): each `check_*` raises AssertionError with a hint, or prints
what passed. The learner's functions are tested on fresh random arrivals, values and health answers.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import numpy as np


def _ok(msg: str) -> None:
    print(f"PASS: {msg}")


def check_latency_metrics(fn: Callable[[float, list[float], int], dict[str, Any]], seed: int = 1818) -> None:
    """Lab 18, task 1: TTFT, E2E, ITL and TPOT from a request's start time and its delta arrival times."""
    rng = random.Random(seed)
    for case in range(30):
        t0 = rng.uniform(0, 1000)
        n = rng.randint(1, 12)
        gaps = [rng.uniform(0.001, 0.3) for _ in range(n)]
        arrivals = [t0 + sum(gaps[: i + 1]) for i in range(n)]
        tokens = n + rng.randint(0, 5)  # a delta can hold several tokens
        got = fn(t0, list(arrivals), tokens)
        want_ttft, want_e2e = arrivals[0] - t0, arrivals[-1] - t0
        want_itl = [b - a for a, b in zip(arrivals, arrivals[1:])]
        want_tpot = (want_e2e - want_ttft) / (tokens - 1) if tokens > 1 else None
        for key in ("ttft", "e2e", "itl", "tpot"):
            assert key in got, f"return a dict with keys ttft, e2e, itl, tpot (missing {key!r})"
        assert math.isclose(got["ttft"], want_ttft, rel_tol=1e-9), (
            f"case {case}: ttft {got['ttft']:.6f}, expected {want_ttft:.6f}: first arrival minus the start time")
        assert math.isclose(got["e2e"], want_e2e, rel_tol=1e-9), (
            f"case {case}: e2e {got['e2e']:.6f}, expected {want_e2e:.6f}: last arrival minus the start time")
        assert len(got["itl"]) == len(want_itl) and all(
            math.isclose(a, b, rel_tol=1e-9) for a, b in zip(got["itl"], want_itl)), (
            f"case {case}: itl should be the {len(want_itl)} gaps between consecutive arrivals, got {got['itl']}")
        if want_tpot is None:
            assert got["tpot"] is None, f"case {case}: with one output token there is no TPOT: return None"
        else:
            assert got["tpot"] is not None and math.isclose(got["tpot"], want_tpot, rel_tol=1e-9), (
                f"case {case}: tpot {got['tpot']}, expected {want_tpot:.6f}: (e2e - ttft) / (tokens - 1), "
                "tokens counted by the tokenizer, not the number of deltas")
    _ok("TTFT, E2E, ITL and TPOT match on 30 fresh streams (one to twelve deltas, several tokens per delta)")


def check_percentile(fn: Callable[[list[float], float], float], seed: int = 1819) -> None:
    """Lab 18, task 2: the q-th percentile with linear interpolation between closest ranks (numpy's default)."""
    rng = np.random.default_rng(seed)
    cases = [[float(x) for x in rng.lognormal(-3, 1, int(rng.integers(1, 60)))] for _ in range(25)]
    cases += [[0.5], [3.0, 1.0], [1.0, 1.0, 1.0, 2.0]]
    for i, vals in enumerate(cases):
        for q in (0, 50, 95, 99, 100):
            got = fn(list(vals), q)
            want = float(np.percentile(vals, q))
            assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), (
                f"case {i} ({len(vals)} values), q={q}: got {got}, expected {want}; sort the values, take rank "
                "r = q/100 * (n - 1) and interpolate between the values at floor(r) and ceil(r)")
    with_nan = None
    try:
        with_nan = fn([], 50)
    except ValueError:
        pass
    except Exception as exc:  # IndexError, ZeroDivisionError ...: a crash, not an answer
        raise AssertionError(f"with no values your function raised {type(exc).__name__}: {exc}; return NaN or raise "
                             "ValueError with a message (a percentile of nothing is not 0)") from None
    else:
        assert isinstance(with_nan, float) and math.isnan(with_nan), \
            "with no values, return NaN or raise ValueError (a percentile of nothing is not 0)"
    _ok(f"percentiles match numpy on {len(cases)} fresh samples at q = 0, 50, 95, 99, 100")


_CASES = [  # (kind, HTTP status or None when nothing answered, body) -> expected state
    ("llama-server", 503, '{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}', "alive"),
    ("llama-server", 200, '{"status":"ok"}', "ready"),
    ("llama-server", None, "", "down"),
    ("ollama", 200, "Ollama is running", "ready"),
    ("ollama", 200, '{"status":"ok"}', "alive"),
    ("ollama", 404, "404 page not found", "alive"),
    ("vllm", 200, "", "ready"),
    ("vllm", 503, "", "alive"),
    ("vllm", None, "", "down"),
    ("openai-compatible", 200, '{"object":"list","data":[{"id":"m"}]}', "ready"),
    ("openai-compatible", 401, '{"error":"unauthorized"}', "alive"),
]


def check_health_state(fn: Callable[[str, int | None, str], str], seed: int = 1820) -> None:
    """Lab 18, task 3: "down", "alive" or "ready" from what a probe saw, as each runtime defines health."""
    cases = list(_CASES)
    random.Random(seed).shuffle(cases)
    for kind, status, body, want in cases:
        got = fn(kind, status, body)
        assert got == want, (f"{kind}: HTTP {status} {body[:40]!r} -> {got!r}, expected {want!r}. Nothing answered "
                             "= down; any HTTP answer = alive; ready only with the kind's ready answer (200, and "
                             "for Ollama the text 'Ollama is running')")
    _ok(f"health states right for {len(cases)} answers of llama-server, Ollama, vLLM and OpenAI-compatible servers")


def check_report(rows: list[dict[str, Any]], table: dict[str, dict[str, float]],
                 percentile: Callable[[list[float], float], float]) -> None:
    """Lab 18, task 4: a table of p50/p95/p99 really computed from the measured rows."""
    assert rows, "measure at least one request"
    for key in ("ttft", "e2e", "tpot"):
        assert key in table, f"the table needs a row {key!r}"
        vals = [r[key] for r in rows if r.get(key) is not None]
        assert vals, f"no {key} values were measured: did the runtime stream text?"
        p = table[key]
        assert p["p50"] <= p["p95"] <= p["p99"], f"{key}: percentiles must not decrease: {p}"
        for q in (50, 95, 99):
            want = percentile(vals, q)
            assert math.isclose(p[f"p{q}"], want, rel_tol=1e-9), \
                f"{key} p{q} is {p[f'p{q}']}, but the percentile of the measured values is {want}"
    assert all(r["e2e"] >= r["ttft"] for r in rows if r.get("ttft") is not None), \
        "a request cannot end before its first token: e2e >= ttft"
    _ok(f"p50/p95/p99 of TTFT, E2E and TPOT computed from {len(rows)} measured requests")
