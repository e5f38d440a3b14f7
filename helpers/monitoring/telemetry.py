"""OpenTelemetry GenAI telemetry for the workbook's runtimes and agent loop (notebook 19).

Names follow the GenAI semantic conventions as released (v1.41.0, status Development), emitted through
`opentelemetry-util-genai`'s `TelemetryHandler` rather than written by hand:
- spans `invoke_agent {agent}` (INTERNAL: the agent runs in this process), `chat {model}` (CLIENT) and
  `execute_tool {tool}` (INTERNAL), nested in that order;
- client metrics `gen_ai.client.operation.duration` (s) and `gen_ai.client.token.usage` ({token}, with
  `gen_ai.token.type` input|output), plus the streaming `gen_ai.client.operation.time_to_first_chunk` and
  `time_per_output_chunk`; attributes `gen_ai.operation.name`, `gen_ai.provider.name`,
  `gen_ai.request.model`, `error.type` on failures.
Prompt and output text are recorded only when opted in (`capture_content=True`, which sets
`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=span_only` for this handler).

Metrics leave through OpenTelemetry's Prometheus exporter into a registry of their own, served on
127.0.0.1 by `serve_metrics()`, so a real Prometheus can scrape the client side of every request.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from helpers.runtimes import Runtime

SEMCONV_VERSION = "1.41.0"
# The names this module emits (OpenTelemetry name -> what a Prometheus scrape shows); tests pin both.
CLIENT_METRICS = {
    "gen_ai.client.operation.duration": "gen_ai_client_operation_duration_seconds",
    "gen_ai.client.token.usage": "gen_ai_client_token_usage",
    "gen_ai.client.operation.time_to_first_chunk": "gen_ai_client_operation_time_to_first_chunk_seconds",
    "gen_ai.client.operation.time_per_output_chunk": "gen_ai_client_operation_time_per_output_chunk_seconds",
}
PROVIDERS = {"embedded": "llama_cpp", "llamacpp": "llama_cpp", "llamaserver": "llama_cpp", "ollama": "ollama",
             "vllm": "vllm", "openai": "openai", "foundry": "foundry_local", "ortgenai": "onnxruntime_genai",
             "ortgenai-service": "onnxruntime_genai", "transformers": "transformers"}


class GenAITelemetry:
    """A tracer and a meter of their own (never the global ones), wired to the GenAI handler.

    `spans()` returns the finished spans (in memory), `registry` is the Prometheus registry the metrics
    land in, `metrics_text()` renders it as a scrape would.
    """

    def __init__(self, service_name: str = "edge-slm-workbook", capture_content: bool = False) -> None:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from prometheus_client import CollectorRegistry

        resource = Resource.create({"service.name": service_name})
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.registry = CollectorRegistry()
        self.reader = PrometheusMetricReader(registry=self.registry)
        # no exemplars: the Prometheus text exposition does not carry them, and offering every measurement to
        # a reservoir was about 13 % of the instrumentation's cost per request (765 against 884 µs, side by side)
        self.meter_provider = MeterProvider(resource=resource, metric_readers=[self.reader],
                                            exemplar_filter=AlwaysOffExemplarFilter())
        self.capture_content = capture_content
        self.handler = self._handler()
        self._server = None

    def _handler(self):
        from opentelemetry.util.genai.handler import TelemetryHandler

        key = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
        old = os.environ.get(key)
        os.environ[key] = "span_only" if self.capture_content else "no_content"
        try:  # the handler reads the switch once, when it is made
            return TelemetryHandler(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider,
                                    instrumentation_scope_name="helpers.monitoring")
        finally:
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old

    def spans(self) -> list[Any]:
        """Finished spans so far, oldest first."""
        return list(self.exporter.get_finished_spans())

    def clear_spans(self) -> None:
        self.exporter.clear()

    def metrics_text(self) -> str:
        """The Prometheus exposition of the metrics recorded so far."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode("utf-8")

    def serve_metrics(self, port: int = 0) -> str:
        """Serve the metrics at http://127.0.0.1:PORT/metrics (a free port by default); returns the URL."""
        from prometheus_client import start_http_server

        if self._server is None:
            self._server, _thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        return f"http://127.0.0.1:{self._server.server_port}/metrics"

    def close(self) -> None:
        """Stop the metrics server and the providers."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.meter_provider.shutdown()
        self.tracer_provider.shutdown()

    @contextmanager
    def invoke_agent(self, agent_name: str, model: str | None = None) -> Iterator[Any]:
        """An `invoke_agent {agent_name}` span around an agent's turn; chat and tool spans nest inside."""
        with self.handler.invoke_local_agent(agent_name=agent_name, request_model=model) as inv:
            yield inv


def _messages_for_span(messages: list[dict[str, Any]]) -> list[Any]:
    from opentelemetry.util.genai.types import InputMessage, Text

    return [InputMessage(role=m.get("role", "user"), parts=[Text(content=str(m.get("content") or ""))])
            for m in messages]


def _output_for_span(text: str, finish: str) -> list[Any]:
    from opentelemetry.util.genai.types import OutputMessage, Text

    return [OutputMessage(role="assistant", parts=[Text(content=text)], finish_reason=finish)]


class TracedRuntime(Runtime):
    """Any Runtime with a `chat {model}` span and the client metrics around every call.

    The runtime underneath is untouched: answers, errors and `answered_by` are its own. A ChatResult that
    carries a malformed tool call is still a completed operation; a request the server refused
    (`finish_reason="error"`, HTTP 4xx/5xx) is a failed one with `error.type` = the status code; an
    exception (the server is gone, the prompt does not fit in-process) is recorded with `error.type` = its
    class name and raised again.
    """

    def __init__(self, runtime: Runtime, telemetry: GenAITelemetry, provider: str | None = None) -> None:
        self.inner = runtime
        self.telemetry = telemetry
        self.name = runtime.name
        self.provider = provider or PROVIDERS.get(runtime.name, runtime.name)

    @property
    def model(self) -> str:
        return self.inner.model

    def availability(self):
        return self.inner.availability()

    def _start(self, messages, max_tokens, temperature, seed, stream):
        inv = self.telemetry.handler.inference(self.provider, request_model=self.inner.model, operation_name="chat")
        inv.max_tokens, inv.temperature, inv.seed = max_tokens, temperature, seed
        inv.request_stream = stream
        if self.telemetry.capture_content:
            inv.input_messages = _messages_for_span(messages)
        return inv

    def _finish(self, inv, result) -> None:
        inv.response_model_name = result.model
        inv.finish_reasons = [result.finish_reason or "stop"]
        inv.input_tokens = result.prompt_tokens or None
        inv.output_tokens = result.completion_tokens or None
        if self.telemetry.capture_content:
            text = result.content or "".join(f"{c.name}({c.arguments})" for c in result.tool_calls)
            inv.output_messages = _output_for_span(text, result.finish_reason or "stop")

    def _end(self, inv, result) -> None:
        """Stop the invocation, or fail it when the runtime reported a refused request (HTTP error)."""
        self._finish(inv, result)
        if result.finish_reason == "error" and result.error:
            import re

            from opentelemetry.util.genai.types import Error

            msg = str(result.error.get("message", ""))
            code = re.search(r"HTTP (\d{3})", msg)
            inv.fail(Error(type=code.group(1) if code else str(result.error.get("type", "error")), message=msg))
        else:
            inv.stop()

    def chat(self, messages, tools=None, *, temperature: float = 0.0, max_tokens: int = 256, seed: int = 123):
        inv = self._start(messages, max_tokens, temperature, seed, False)
        try:
            result = self.inner.chat(messages, tools, temperature=temperature, max_tokens=max_tokens, seed=seed)
        except BaseException as exc:
            inv.fail(exc)
            raise
        self._end(inv, result)
        return result

    def stream(self, messages, tools=None, *, temperature: float = 0.0, max_tokens: int = 256, seed: int = 123):
        inv = self._start(messages, max_tokens, temperature, seed, True)
        result = None
        try:
            for ev in self.inner.stream(messages, tools, temperature=temperature, max_tokens=max_tokens, seed=seed):
                if ev.delta:
                    inv.record_stream_chunk()
                if ev.result is not None:
                    result = ev.result
                yield ev
        except BaseException as exc:
            inv.fail(exc)
            raise
        if result is None:
            inv.stop()
        else:
            self._end(inv, result)

    def close(self) -> None:
        self.inner.close()


class TracedTools:
    """A toolbox (anything with `.call(name, arguments)`) whose calls run in `execute_tool {name}` spans.

    Every other attribute is the toolbox's own, so the agent loop sees the same tools, schemas and checks.
    Arguments and results are recorded only when the telemetry opted in to content.
    """

    def __init__(self, tools: Any, telemetry: GenAITelemetry) -> None:
        self._tools = tools
        self._telemetry = telemetry

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tools, name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def __getitem__(self, name: str) -> Any:
        return self._tools[name]

    def call(self, name: str, arguments: dict[str, Any]) -> Any:
        with self._telemetry.handler.tool(name, tool_type="function") as inv:
            if self._telemetry.capture_content:
                inv.arguments = arguments
            result = self._tools.call(name, arguments)
            if self._telemetry.capture_content:
                inv.tool_result = result
            return result


def span_tree(spans: list[Any]) -> list[str]:
    """Finished spans as an indented tree (parents before children, in start order)."""
    by_parent: dict[int | None, list[Any]] = {}
    ids = {s.context.span_id for s in spans}
    for s in sorted(spans, key=lambda s: s.start_time):
        parent = s.parent.span_id if s.parent is not None and s.parent.span_id in ids else None
        by_parent.setdefault(parent, []).append(s)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for s in by_parent.get(parent, []):
            kind = str(s.kind).split(".")[-1]
            err = f" error.type={s.attributes.get('error.type')}" if s.attributes.get("error.type") else ""
            lines.append(f"{'  ' * depth}{s.name} [{kind}]{err}")
            walk(s.context.span_id, depth + 1)

    walk(None, 0)
    return lines
