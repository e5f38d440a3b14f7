"""Auto-checks for lab 11 (llama.cpp's own server): each `check_*` raises AssertionError with a hint.

Introduced in lab 11. The learner's health poller runs against a freshly started llama-server and against a
port where nothing listens; the metrics reader and the outcome counter are tested on fresh random inputs
against `helpers.runtimes.llama_server.parse_metrics` and `helpers.runtimes.probe.classify`.
"""

from __future__ import annotations

import math
import random
import subprocess
import time
from collections.abc import Callable
from itertools import pairwise
from typing import Any

from helpers.runtimes.probe import OUTCOMES, Answer, classify


def _ok(msg: str) -> None:
    print(f"PASS: {msg}")


def check_wait_healthy(fn: Callable[[str, float], list[int]], runtime_factory: Callable[..., Any]) -> None:
    """Lab 11, task 1: `fn(root_url, timeout_s)` polls /health until 200 and returns the statuses it saw in
    order (repeats collapsed); it raises TimeoutError when nothing becomes healthy in time."""
    from helpers.runtimes.wire import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    t0 = time.perf_counter()
    try:
        fn(dead, 1.0)
    except TimeoutError:
        pass
    else:
        raise AssertionError(f"nothing listens at {dead}, so your function must raise TimeoutError after the timeout")
    took = time.perf_counter() - t0
    assert took < 5.0, f"with timeout_s=1 your function gave up after {took:.1f} s: check the clock in your loop"
    rt = runtime_factory(start=False)
    proc = subprocess.Popen(rt.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    try:
        seen = fn(rt.root, 30.0)
        assert isinstance(seen, list) and seen, "return the list of /health statuses you saw, e.g. [503, 200]"
        assert seen[-1] == 200, f"the last status must be 200 (ready); you returned {seen}"
        assert all(s in (0, 503, 200) for s in seen), (f"statuses are 503 while loading, 200 when ready (0 if "
                                                       f"nothing answered yet); you returned {seen}")
        assert all(a != b for a, b in pairwise(seen)), f"collapse repeats: {seen} has the same status twice"
        assert proc.poll() is None, "the server stopped while you polled it"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    _ok(f"polled a fresh llama-server through {seen} and gave up on a dead port after {took:.1f} s")


def _fresh_metrics(rng: random.Random) -> tuple[str, dict[str, float]]:
    pred, pred_s = rng.randint(1, 50_000), rng.uniform(0.01, 120.0)
    prompt, prompt_s = rng.randint(1, 90_000), rng.uniform(0.01, 60.0)
    busy = rng.randint(0, 4)
    families = [("prompt_tokens_total", "counter", prompt), ("prompt_seconds_total", "counter", prompt_s),
                ("tokens_predicted_total", "counter", pred), ("tokens_predicted_seconds_total", "counter", pred_s),
                ("requests_processing", "gauge", busy), ("n_decode_total", "counter", rng.randint(0, 9999))]
    rng.shuffle(families)  # a reader must find each sample by name, not by position
    lines = [ln for name, kind, value in families for ln in
             (f"# HELP llamacpp:{name} {name.replace('_', ' ')}.", f"# TYPE llamacpp:{name} {kind}",
              f"llamacpp:{name} {value}")]
    want = {"prompt_tps": prompt / prompt_s, "gen_tps": pred / pred_s, "requests_processing": float(busy)}
    return "\n".join(lines) + "\n", want


def check_throughput(fn: Callable[[str], dict[str, float]], seed: int = 1111) -> None:
    """Lab 11, task 2: `fn(metrics_text)` returns prompt_tps, gen_tps and requests_processing from a scrape."""
    rng = random.Random(seed)
    for i in range(25):
        text, want = _fresh_metrics(rng)
        got = fn(text)
        assert isinstance(got, dict), "return a dict with prompt_tps, gen_tps and requests_processing"
        for k, v in want.items():
            assert k in got, f"scrape {i}: the key {k!r} is missing"
            assert math.isclose(float(got[k]), v, rel_tol=1e-6), (
                f"scrape {i}: {k} = {got[k]}, expected {v:.6g}; tokens/s is the tokens counter divided by its "
                "seconds counter (llamacpp:tokens_predicted_total / llamacpp:tokens_predicted_seconds_total)")
    zero, _ = _fresh_metrics(rng)
    zero = "\n".join(ln if not ln.startswith("llamacpp:tokens_predicted_seconds_total ") else
                     "llamacpp:tokens_predicted_seconds_total 0" for ln in zero.splitlines()) + "\n"
    try:
        got = fn(zero)["gen_tps"]
    except ZeroDivisionError:
        raise AssertionError("before any generation llamacpp:tokens_predicted_seconds_total is 0 and your function "
                             "divided by it: return 0 (or NaN) when the seconds counter is 0") from None
    assert got == 0 or math.isnan(got), (f"before any generation the seconds counter is 0: return 0 or NaN, not "
                                         f"{got} (and never divide by zero)")
    _ok("throughput read correctly from 25 fresh scrapes, and no division by zero before the first request")


def _fresh_pair(rng: random.Random) -> tuple[Answer, Answer]:
    words = ["Hello", "order", "48213", "is", "on", "its", "way", "thanks", "for", "waiting", "!"]
    ref = Answer(text=" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))), finish_reason="stop")
    kind = rng.choice(OUTCOMES)
    if kind == "identical":
        return Answer(text=ref.text, finish_reason="stop"), ref
    if kind == "lost":
        return Answer(text="", finish_reason=rng.choice([None, "stop"])), ref
    if kind == "cut":
        if rng.random() < 0.3:  # the whole text, but the stream ended without its finish reason
            return Answer(text=ref.text, finish_reason=None), ref
        cut = rng.randint(1, len(ref.text) - 1)
        return Answer(text=ref.text[:cut], finish_reason=rng.choice([None, "length"])), ref
    if kind == "error":
        return Answer(error=f"HTTP {rng.choice([500, 503])}"), ref
    return Answer(text=ref.text + " extra", finish_reason="stop"), ref


def check_outcomes(fn: Callable[[list[Answer], list[Answer]], dict[str, int]], seed: int = 1112) -> None:
    """Lab 11, task 3: `fn(concurrent, sequential)` counts identical / cut / lost / different / error answers."""
    rng = random.Random(seed)
    for trial in range(30):
        pairs = [_fresh_pair(rng) for _ in range(rng.randint(1, 12))]
        got_answers, refs = [p[0] for p in pairs], [p[1] for p in pairs]
        want = {k: 0 for k in OUTCOMES}
        for g, r in pairs:
            want[classify(g, r)] += 1
        got = fn(got_answers, refs)
        assert isinstance(got, dict), "return a dict {outcome: count}"
        got = {k: int(got.get(k, 0)) for k in OUTCOMES}
        if got != want:
            diff = next((g, r) for g, r in pairs if got[classify(g, r)] != want[classify(g, r)])
            raise AssertionError(
                f"trial {trial}: you counted {got}, expected {want}. For example the answer {diff[0].text!r} "
                f"(finish {diff[0].finish_reason}, error {diff[0].error}) against {diff[1].text!r} is "
                f"{classify(*diff)!r}. An error first; identical needs the same text and finish reason; empty "
                "text is lost; a strict prefix (or the full text without its finish reason) is cut.")
    _ok("outcomes counted correctly on 30 fresh sets of answers")
