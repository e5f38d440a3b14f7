"""Auto-checks for lab 19 (metrics and traces): each `check_*` raises AssertionError with a hint, or prints
what passed. Names are checked against what OpenTelemetry's Prometheus exporter really produces for fresh
instruments; quantiles against the Prometheus definition on fresh histograms; traces on the learner's run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from helpers.monitoring import exposition


def _ok(msg: str) -> None:
    print(f"PASS: {msg}")


_WORDS = ["shop", "order", "lookup", "queue", "gen_ai", "client", "cache", "prefill", "decode", "tool"]
_UNITS = ["s", "By", "{token}", "{request}", "1", "ms"]


def _exported_names(instruments: list[tuple[str, str]]) -> list[str]:
    """Record one value on a histogram per (name, unit) and return the family names a scrape shows."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry, generate_latest

    reg = CollectorRegistry()
    reader = PrometheusMetricReader(registry=reg)
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("lab19")
    for name, unit in instruments:
        meter.create_histogram(name, unit=unit).record(1.0)
    fams = exposition.families(generate_latest(reg).decode())
    provider.shutdown()
    out = []
    for name, unit in instruments:
        prefix = name.replace(".", "_")
        match = [f for f in fams if f.startswith(prefix) and fams[f] == "histogram"]
        out.append(min(match, key=len) if match else "?")
    return out


def check_prometheus_name(fn: Callable[[str, str], str], seed: int = 1919) -> None:
    """Lab 19, task 1: the Prometheus name of an OpenTelemetry histogram (name, unit), as the exporter makes it."""
    rng = random.Random(seed)
    instruments = [(".".join(rng.sample(_WORDS, rng.randint(2, 4))) + f".m{i}", rng.choice(_UNITS)) for i in range(12)]
    instruments += [("gen_ai.client.operation.duration", "s"), ("gen_ai.client.token.usage", "{token}")]
    for (name, unit), want in zip(instruments, _exported_names(instruments)):
        got = fn(name, unit)
        assert got == want, (f"{name!r} with unit {unit!r}: you gave {got!r}, the exporter scrapes {want!r}. Dots "
                             "become underscores; s -> _seconds, By -> _bytes, ms -> _milliseconds; '1' and "
                             "{...} units add nothing")
    _ok(f"{len(instruments)} OpenTelemetry names map to the Prometheus names the exporter really produces")


def _fresh_buckets(rng: random.Random) -> list[tuple[float, float]]:
    bounds = sorted({round(rng.uniform(0.001, 5), 3) for _ in range(rng.randint(2, 9))})
    counts, total = [], 0.0
    for _ in bounds:
        total += rng.choice([0, 0, rng.randint(1, 50)])
        counts.append(total)
    total += rng.randint(0, 5)
    return list(zip(bounds, counts)) + [(math.inf, total)]


def check_histogram_quantile(fn: Callable[[float, list[tuple[float, float]]], float], seed: int = 1920) -> None:
    """Lab 19, task 2: Prometheus's histogram_quantile on fresh cumulative buckets."""
    rng = random.Random(seed)
    n = 0
    for case in range(60):
        cum = _fresh_buckets(rng)
        for q in (0.5, 0.9, 0.95, 0.99):
            want = exposition.histogram_quantile(q, cum)
            got = fn(q, list(cum))
            if math.isnan(want):
                assert got is None or math.isnan(got), f"case {case}: no observations, expected NaN, got {got}"
                continue
            n += 1
            assert got is not None and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), (
                f"case {case}, q={q}, buckets {cum}: got {got}, expected {want}. Rank = q * total (the +Inf "
                "count); find the first bucket whose count reaches the rank; interpolate linearly between the "
                "previous bound (0 for the first) and this one; a rank in the +Inf bucket gives the highest "
                "finite bound")
    _ok(f"histogram_quantile matches Prometheus's definition on {n} fresh (histogram, q) pairs")


def check_trace(spans: list[Any], metrics_text: str, agent_name: str) -> None:
    """Lab 19, task 3: a real agent run traced with the GenAI names, content left out, token usage recorded."""
    assert spans, "no spans: run the agent inside `tel.invoke_agent(...)` with the traced runtime and tools"
    names = [s.name for s in spans]
    roots = [s for s in spans if s.name == f"invoke_agent {agent_name}"]
    assert roots, f"no span named 'invoke_agent {agent_name}' (spans: {names})"
    root = roots[-1]
    children = [s for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id]
    chats = [s for s in children if s.name.startswith("chat ")]
    tools = [s for s in children if s.name.startswith("execute_tool ")]
    assert chats, f"no 'chat {{model}}' span inside invoke_agent: wrap the runtime in TracedRuntime (spans: {names})"
    assert tools, ("no 'execute_tool {tool}' span inside invoke_agent: wrap the toolbox in TracedTools, and ask "
                   "something that needs a tool (an order status)")
    for s in chats:
        a = s.attributes
        assert a.get("gen_ai.operation.name") == "chat" and a.get("gen_ai.provider.name"), \
            f"{s.name}: gen_ai.operation.name and gen_ai.provider.name are required"
        assert s.name == f"chat {a.get('gen_ai.request.model')}", f"{s.name}: the span is named chat {{request model}}"
    for s in spans:
        assert "gen_ai.input.messages" not in s.attributes, \
            "prompt text was recorded: keep capture_content=False (the conventions' default) for this task"
    samples = exposition.parse(metrics_text)
    for t in ("input", "output"):
        assert exposition.select(samples, "gen_ai_client_token_usage_count", gen_ai_token_type=t), \
            f"no gen_ai.client.token.usage with gen_ai.token.type={t} in the metrics: pass tel.metrics_text()"
    _ok(f"invoke_agent {agent_name} holds {len(chats)} chat and {len(tools)} execute_tool spans; token usage "
        "recorded by type; no content")
