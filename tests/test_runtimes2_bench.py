"""bench-serve's definitions (vllm bench serve's), on a scripted Runtime whose pieces arrive at known times
(a test double of the runtime interface; the notebook measures the real runtimes)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from helpers.bench_serve import RequestRecord, open_runtime, percentile, run_level, summarize, time_request
from helpers.runtimes.base import Availability, ChatResult, Runtime, StreamEvent


class Scripted(Runtime):
    """Streams `n` pieces `gap` seconds apart after `first` seconds."""

    name = "scripted"

    def __init__(self, n: int = 5, first: float = 0.03, gap: float = 0.01, fail: bool = False) -> None:
        self.n, self.first, self.gap, self.fail = n, first, gap, fail

    def availability(self) -> Availability:
        return Availability(self.name, True, "test double")

    @property
    def model(self) -> str:
        return "script"

    def chat(self, messages, tools=None, **kw) -> ChatResult:
        raise NotImplementedError

    def stream(self, messages, tools=None, **kw: Any) -> Iterator[StreamEvent]:
        if self.fail:
            raise ConnectionError("server went away")
        time.sleep(self.first)
        for i in range(self.n):
            if i:
                time.sleep(self.gap)
            yield StreamEvent(delta=f"t{i} ")
        yield StreamEvent(result=ChatResult(runtime=self.name, model=self.model, content="x", completion_tokens=self.n))


def test_time_request_measures_ttft_itl_and_tokens():
    rec = time_request(Scripted(n=5, first=0.05, gap=0.02), [{"role": "user", "content": "hi"}], 8)
    assert rec.ok and rec.output_tokens == 5 and len(rec.itl) == 4
    assert 0.045 <= rec.ttft < 0.2 and all(0.015 <= g < 0.15 for g in rec.itl)
    assert math.isclose(rec.tpot, (rec.e2el - rec.ttft) / 4)


def test_failed_request_is_counted_not_raised():
    rec = time_request(Scripted(fail=True), [{"role": "user", "content": "hi"}], 8)
    assert not rec.ok and "server went away" in rec.error


def test_summarize_follows_vllm_definitions():
    recs = [RequestRecord(ok=True, ttft=0.1, e2el=0.5, output_tokens=5, itl=[0.1] * 4),
            RequestRecord(ok=True, ttft=0.3, e2el=1.3, output_tokens=11, itl=[0.1] * 10),
            RequestRecord(ok=False, e2el=0.2, error="x")]
    row = summarize(recs, wall_s=2.0, slo_ttft_ms=200)
    assert row["completed"] == 2 and row["failed"] == 1
    assert row["output_throughput"] == 8.0 and row["request_throughput"] == 1.0
    assert row["request_goodput"] == 0.5  # only the first meets TTFT <= 200 ms
    assert math.isclose(row["mean_tpot_ms"], 100.0)
    assert math.isclose(row["p99_e2el_ms"], float(np.percentile([500, 1300], 99)))
    assert math.isnan(percentile([], 50))


def test_run_level_queues_in_process_requests_and_reports_memory():
    row = run_level(Scripted(n=3, first=0.02, gap=0.005), [[{"role": "user", "content": "hi"}]] * 4, 2, 8)
    assert row["completed"] == 4 and row["in_process"] and row["peak_rss_mb"] > 0
    assert row["p99_ttft_ms"] >= 2 * row["p50_ttft_ms"] * 0.5  # later requests waited for the lock


def test_unknown_or_absent_runtimes_are_skipped_with_a_reason(monkeypatch):
    from helpers.runtimes.openai_compat import free_port

    rt, why = open_runtime("no-such-runtime")
    assert rt is None and "does not know" in why
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{free_port()}")
    rt, why = open_runtime("ollama")
    assert rt is None and "ollama serve" in why


def test_bench_serve_command_refuses_bad_levels():
    from helpers.cli import main

    assert main(["bench-serve", "--concurrency", "0,2", "--runtimes", "embedded"]) == 2


def test_bench_model_measurements_on_the_workbook_model():
    from helpers.bench_model import BenchShape, decode_tokens_per_s
    from helpers.paths import GGUF_DIR

    assert decode_tokens_per_s(GGUF_DIR / "edge-slm-q8_0.gguf", threads=1, n_tokens=4, repeats=1) > 0
    assert BenchShape().tag == "h1024-l24-i2816"


def test_workbook_server_does_not_cut_concurrent_streams():
    """llama-cpp-python's server ends a running stream when another request arrives, unless told not to."""
    from helpers.bench_serve import bench_prompts
    from helpers.runtimes import get_runtime

    prompts = bench_prompts(2)
    with get_runtime("llamacpp") as rt:
        alone = [time_request(rt, p, 16).output_tokens for p in prompts]
        together = run_level(rt, prompts, 2, 16)
    assert together["completed"] == 2 and together["total_output_tokens"] == sum(alone), (alone, together)
