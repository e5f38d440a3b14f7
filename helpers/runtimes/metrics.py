"""Prometheus metrics for the servers the workbook runs, named after the OpenTelemetry GenAI conventions.

The names follow the released GenAI semantic conventions (v1.41.0, status Development) as OpenTelemetry's
Prometheus exporter maps them: dots become underscores and the unit `s` becomes the suffix `_seconds`, so
`gen_ai.server.time_to_first_token` is scraped as `gen_ai_server_time_to_first_token_seconds`. Attribute
names map the same way (`gen_ai.request.model` -> label `gen_ai_request_model`). Queue and token counters
have no released GenAI name; they carry the workbook's prefix `edge_slm_`, as vLLM's carry `vllm:`.

Every server the workbook starts (its own llama.cpp server, the ONNX Runtime GenAI service, the gateway)
records requests through one `ServerMetrics` and serves `exposition()` at `/metrics`. The monitoring notebooks (18-20)
read these names; `tests/test_metrics.py` pins them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

SEMCONV_VERSION = "1.41.0"

# Advised bucket boundaries of the conventions (v1.41.0, gen-ai-metrics.md).
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)

# OpenTelemetry name -> the Prometheus name a scrape shows (histograms add _bucket, _sum and _count).
OTEL_TO_PROMETHEUS = {
    "gen_ai.server.request.duration": "gen_ai_server_request_duration_seconds",
    "gen_ai.server.time_to_first_token": "gen_ai_server_time_to_first_token_seconds",
    "gen_ai.server.time_per_output_token": "gen_ai_server_time_per_output_token_seconds",
}
LABELS = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")


@dataclass
class RequestRecord:
    """What one request did, filled in while it runs (see `ServerMetrics.track`)."""

    model: str
    operation: str = "chat"
    started: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    prompt_tokens: int = 0
    output_tokens: int = 0
    error_type: str | None = None

    def first_token(self) -> None:
        """Mark the moment the first output token was produced (once)."""
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()


class ServerMetrics:
    """One server's metrics in its own registry (so two servers in one process never collide).

    Introduced in notebook 11. `provider` is the `gen_ai.provider.name` value (`llama_cpp`, `onnxruntime_genai`,
    `edge_slm_gateway`...).
    """

    def __init__(self, provider: str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

        self.provider = provider
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.request_duration = Histogram(
            "gen_ai_server_request_duration", "Time from request received to last byte sent (GenAI semconv).",
            [*LABELS, "error_type"], unit="seconds", buckets=DURATION_BUCKETS, registry=self.registry)
        self.ttft = Histogram(
            "gen_ai_server_time_to_first_token", "Queue plus prefill time of successful requests (GenAI semconv).",
            LABELS, unit="seconds", buckets=TTFT_BUCKETS, registry=self.registry)
        self.tpot = Histogram(
            "gen_ai_server_time_per_output_token",
            "(request duration - time to first token) / (output tokens - 1) of successful requests (GenAI semconv).",
            LABELS, unit="seconds", buckets=TPOT_BUCKETS, registry=self.registry)
        self.prompt_tokens = Counter("edge_slm_prompt_tokens", "Prompt tokens processed.", LABELS,
                                     registry=self.registry)
        self.output_tokens = Counter("edge_slm_generation_tokens", "Output tokens generated.", LABELS,
                                     registry=self.registry)
        self.requests = Counter("edge_slm_requests", "Requests finished, by outcome (ok or the error type).",
                                [*LABELS, "outcome"], registry=self.registry)
        self.running = Gauge("edge_slm_requests_running", "Requests being generated now.", registry=self.registry)
        self.waiting = Gauge("edge_slm_requests_waiting", "Requests accepted and waiting for the model.",
                             registry=self.registry)

    def observe(self, rec: RequestRecord) -> None:
        """Record a finished request: duration always; TTFT and time per output token on success only."""
        done = time.perf_counter()
        labels = (rec.operation, self.provider, rec.model)
        self.request_duration.labels(*labels, rec.error_type or "").observe(done - rec.started)
        self.requests.labels(*labels, rec.error_type or "ok").inc()
        self.prompt_tokens.labels(*labels).inc(rec.prompt_tokens)
        self.output_tokens.labels(*labels).inc(rec.output_tokens)
        if rec.error_type is None and rec.first_token_at is not None:
            self.ttft.labels(*labels).observe(rec.first_token_at - rec.started)
            if rec.output_tokens > 1:
                self.tpot.labels(*labels).observe((done - rec.first_token_at) / (rec.output_tokens - 1))

    @contextmanager
    def track(self, model: str, operation: str = "chat") -> Iterator[RequestRecord]:
        """Count a request as running while the block runs, then observe it; an exception sets `error_type`."""
        rec = RequestRecord(model=model, operation=operation)
        self.running.inc()
        try:
            yield rec
        except BaseException as exc:
            rec.error_type = rec.error_type or type(exc).__name__
            raise
        finally:
            self.running.dec()
            self.observe(rec)

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text of this registry and its content type, for a `/metrics` route."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
