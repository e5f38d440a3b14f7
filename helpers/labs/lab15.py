"""Auto-checks for lab 15 (vLLM): each `check_*` raises AssertionError with a hint.

Introduced in lab 15. The repaired recipe goes through `VLLMServeConfig.findings()`; the histogram reader
runs on fresh Prometheus text written by prometheus-client itself from random observations; the capacity
estimate is compared with `replicas_needed` on fresh numbers.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any


def _ok(msg: str) -> None:
    print(f"PASS: {msg}")


def check_repaired_recipe(fn: Callable[[], Any]) -> None:
    """Lab 15, task 1: the course's compose recipe, repaired: same model on a GPU, no errors."""
    from helpers.runtimes.vllm_config import GPU_IMAGE, VLLMServeConfig

    cfg = fn()
    assert isinstance(cfg, VLLMServeConfig), f"return a VLLMServeConfig, not {type(cfg).__name__}"
    assert cfg.model == "microsoft/Phi-4-mini-instruct", f"serve the recipe's model, not {cfg.model!r}"
    assert cfg.device == "cuda", "the recipe runs on a GPU: device='cuda'"
    errors = [f for f in cfg.findings() if f.level == "error"]
    assert not errors, "still wrong: " + "; ".join(f"[{f.rule}] {f.message}" for f in errors)
    assert cfg.image and cfg.image.split(":")[0] == GPU_IMAGE, f"use the CUDA image {GPU_IMAGE}:<version>"
    assert cfg.enable_auto_tool_choice and cfg.tool_call_parser, \
        "the recipe wants automatic tool choice: keep --enable-auto-tool-choice and add a --tool-call-parser"
    assert cfg.published_on == "127.0.0.1", "publish the port on 127.0.0.1"
    assert cfg.api_key, "set api_key=True (the key itself comes from VLLM_API_KEY)"
    assert (cfg.quantization or "") != "awq" or cfg.checkpoint_prequantized, "no AWQ on an unquantized checkpoint"
    svc = cfg.compose_service()
    assert svc["ports"] == [f"127.0.0.1:{cfg.port}:{cfg.port}"], f"rendered ports {svc['ports']}"
    warnings = [f.rule for f in cfg.findings()]
    _ok(f"the repaired recipe has no errors and renders a compose service (warnings left: {warnings or 'none'})")


def _exposition(rng: random.Random, name: str) -> tuple[str, float]:
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    reg = CollectorRegistry()
    h = Histogram(name, "fresh histogram", ["model_name"], registry=reg,
                  buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0))
    other = Histogram("vllm:e2e_request_latency_seconds", "other", ["model_name"], registry=reg)
    c = Counter("vllm:generation_tokens", "tokens", ["model_name"], registry=reg)
    values = []
    for model in rng.sample(["qwen", "phi", "llama"], rng.randint(1, 3)):
        for _ in range(rng.randint(1, 40)):
            v = rng.expovariate(1 / rng.uniform(0.01, 2.0))
            values.append(v)
            h.labels(model).observe(v)
            other.labels(model).observe(v * 10 + 1)
            c.labels(model).inc(rng.randint(1, 50))
    return generate_latest(reg).decode(), sum(values) / len(values)


def check_histogram_mean(fn: Callable[[str, str], float], seed: int = 1515) -> None:
    """Lab 15, task 2: the mean of a histogram over all label sets, and KeyError for a missing name."""
    rng = random.Random(seed)
    name = "vllm:time_to_first_token_seconds"
    for i in range(15):
        text, want = _exposition(rng, name)
        got = fn(text, name)
        assert got is not None and math.isclose(float(got), want, rel_tol=1e-9), (
            f"case {i}: expected mean {want:.6g} s, got {got!r}; add up every `{name}_sum` and every `{name}_count` "
            "sample (one per model_name), then divide; do not average bucket bounds or read another family")
    try:
        fn(text, "vllm:gpu_cache_usage_perc")
    except KeyError as exc:
        assert "vllm:" in str(exc), "the KeyError should name the families that are present"
    else:
        raise AssertionError("a name missing from the text must raise KeyError (a removed metric reads as nothing)")
    _ok("histogram means right on 15 fresh expositions written by prometheus-client, KeyError on a missing name")


def check_capacity(fn: Callable[[float, float, float], int], seed: int = 1516) -> None:
    """Lab 15, task 3: ceil(target / (measured * headroom)), at least 1, ValueError on bad input."""
    from helpers.runtimes.vllm_config import replicas_needed

    rng = random.Random(seed)
    cases = [(rng.uniform(0.1, 500), rng.uniform(0.05, 80), rng.choice([1.0, 0.9, 0.7, 0.5, rng.uniform(0.1, 1)]))
             for _ in range(60)] + [(10.0, 10.0, 1.0), (10.0, 5.0, 0.5), (0.0, 3.0, 0.7)]
    for target, measured, headroom in cases:
        want, got = replicas_needed(target, measured, headroom), fn(target, measured, headroom)
        assert isinstance(got, int), f"return a whole number of replicas (an int), got {got!r}"
        assert got == want, (f"target {target:.3g} req/s, one replica {measured:.3g} req/s at headroom "
                             f"{headroom:.2f}: expected {want}, got {got}; ceil(target / (measured * headroom)), "
                             "at least 1")
    for bad in ((10.0, 0.0, 0.7), (10.0, -1.0, 0.7), (10.0, 5.0, 0.0), (10.0, 5.0, 1.5)):
        try:
            fn(*bad)
        except ValueError:
            continue
        raise AssertionError(f"replicas{bad} must raise ValueError (nothing measured, or headroom outside (0, 1])")
    _ok(f"capacity right on {len(cases)} fresh cases and ValueError on 4 bad ones")
