"""The checks of labs 18-20 pass right answers and fail wrong ones with a message that says what to fix."""

import math
import shutil

import numpy as np
import pytest

from helpers import monitoring as mon
from helpers.labs import lab18, lab19, lab20

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool not installed: `apt-get install prometheus` (see README)")


# ---------------------------------------------------------------- lab 18

def good_latency(t0, arrivals, n):
    ttft, e2e = arrivals[0] - t0, arrivals[-1] - t0
    return {"ttft": ttft, "e2e": e2e, "itl": [b - a for a, b in zip(arrivals, arrivals[1:])],
            "tpot": (e2e - ttft) / (n - 1) if n > 1 else None}


def test_lab18_latency_right_and_wrong():
    lab18.check_latency_metrics(good_latency)

    def per_delta_tpot(t0, arrivals, n):  # divides by deltas, not tokens
        out = good_latency(t0, arrivals, n)
        out["tpot"] = (out["e2e"] - out["ttft"]) / max(len(arrivals) - 1, 1) if len(arrivals) > 1 else None
        return out

    with pytest.raises(AssertionError, match="tokens counted by the tokenizer"):
        lab18.check_latency_metrics(per_delta_tpot)

    def itl_from_start(t0, arrivals, n):
        return {**good_latency(t0, arrivals, n), "itl": [a - t0 for a in arrivals[1:]]}

    with pytest.raises(AssertionError, match="gaps between consecutive arrivals"):
        lab18.check_latency_metrics(itl_from_start)


def test_lab18_percentile_right_and_wrong():
    def good(values, q):
        if not values:
            return math.nan
        xs = sorted(values)
        r = q / 100 * (len(xs) - 1)
        lo, hi = math.floor(r), math.ceil(r)
        return xs[lo] + (xs[hi] - xs[lo]) * (r - lo)

    lab18.check_percentile(good)

    def nearest_rank(values, q):
        xs = sorted(values)
        return xs[min(len(xs) - 1, int(q / 100 * len(xs)))] if xs else math.nan

    with pytest.raises(AssertionError, match="interpolate"):
        lab18.check_percentile(nearest_rank)


def test_lab18_health_right_and_wrong():
    def good(kind, status, body):
        if status is None:
            return "down"
        return "ready" if status == 200 and (kind != "ollama" or "Ollama is running" in body) else "alive"

    lab18.check_health_state(good)
    with pytest.raises(AssertionError, match="Ollama is running"):
        lab18.check_health_state(lambda k, s, b: "down" if s is None else ("ready" if s == 200 else "alive"))


def test_lab18_report_must_come_from_the_rows():
    rows = [good_latency(0.0, [0.1 * i + 0.05 * j for j in range(1, 5)], 6) for i in range(1, 8)]
    def pct(v, q):
        return float(np.percentile(v, q))

    table = {k: {f"p{q}": pct([r[k] for r in rows], q) for q in (50, 95, 99)} for k in ("ttft", "e2e", "tpot")}
    lab18.check_report(rows, table, pct)
    table["e2e"]["p95"] = 1.0  # typed in, not computed
    with pytest.raises(AssertionError, match="e2e"):
        lab18.check_report(rows, table, pct)


# ---------------------------------------------------------------- lab 19

def test_lab19_prometheus_name_right_and_wrong():
    def good(name, unit):
        suffix = {"s": "seconds", "ms": "milliseconds", "By": "bytes"}.get(unit, "")
        return name.replace(".", "_") + (f"_{suffix}" if suffix else "")

    lab19.check_prometheus_name(good)
    with pytest.raises(AssertionError, match="_seconds"):
        lab19.check_prometheus_name(lambda n, u: n.replace(".", "_"))


def test_lab19_histogram_quantile_right_and_wrong():
    lab19.check_histogram_quantile(mon.histogram_quantile)

    def upper_bound_only(q, buckets):  # no interpolation inside the bucket
        total = buckets[-1][1]
        if total == 0:
            return math.nan
        finite = [b for b, _ in buckets if not math.isinf(b)]
        return next((b if not math.isinf(b) else finite[-1] for b, c in buckets if c >= q * total), finite[-1])

    with pytest.raises(AssertionError, match="interpolate linearly"):
        lab19.check_histogram_quantile(upper_bound_only)


def test_lab19_trace_needs_tool_spans_and_no_content():
    tel = mon.GenAITelemetry()
    try:
        with tel.invoke_agent("a", model="m"):
            inv = tel.handler.inference("llama_cpp", request_model="m", operation_name="chat")
            inv.input_tokens, inv.output_tokens = 3, 2
            inv.stop()
        with pytest.raises(AssertionError, match="execute_tool"):
            lab19.check_trace(tel.spans(), tel.metrics_text(), "a")
        with pytest.raises(AssertionError, match="invoke_agent b"):
            lab19.check_trace(tel.spans(), tel.metrics_text(), "b")
    finally:
        tel.close()


# ---------------------------------------------------------------- lab 20

SLOW_P95 = ("histogram_quantile(0.95, sum by (le, gen_ai_request_model) "
            "(rate(gen_ai_client_operation_duration_seconds_bucket[5m]))) > 0.02")
RULE = f"""
groups:
  - name: lab20
    rules:
      - alert: EdgeSLMClientSlowP95
        expr: {SLOW_P95}
        for: 1m
        labels:
          severity: warning
"""

TEST = """
rule_files:
  - rules.yml
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'gen_ai_client_operation_duration_seconds_bucket{gen_ai_request_model="slow",le="0.01"}'
        values: '0+0x10'
      - series: 'gen_ai_client_operation_duration_seconds_bucket{gen_ai_request_model="slow",le="1.28"}'
        values: '0+5x10'
      - series: 'gen_ai_client_operation_duration_seconds_bucket{gen_ai_request_model="slow",le="+Inf"}'
        values: '0+5x10'
    alert_rule_test:
      - eval_time: 8m
        alertname: EdgeSLMClientSlowP95
        exp_alerts:
          - exp_labels:
              severity: warning
              gen_ai_request_model: slow
"""


def test_lab20_rule_structure_errors_without_promtool():
    with pytest.raises(AssertionError, match="EdgeSLMClientSlowP95"):
        lab20.check_rule(RULE.replace("EdgeSLMClientSlowP95", "Slow"), 0.02)
    with pytest.raises(AssertionError, match="histogram_quantile"):
        lab20.check_rule(RULE.replace("histogram_quantile(0.95,", "histogram_quantile(0.5,"), 0.02)
    with pytest.raises(AssertionError, match="between 0.01 s and 1 s"):
        lab20.check_rule(RULE, 5.0)


@needs_promtool
def test_lab20_rule_and_test_right_and_wrong():
    lab20.check_rule(RULE, 0.02)
    with pytest.raises(AssertionError, match="gen_ai_request_model"):  # the model label is lost
        lab20.check_rule(RULE.replace("sum by (le, gen_ai_request_model)", "sum by (le)"), 0.02)
    lab20.check_rule_test(RULE, TEST)
    never_fires = TEST.replace("eval_time: 8m", "eval_time: 0m").split("        exp_alerts:")[0] + \
        "        exp_alerts: []\n"
    with pytest.raises(AssertionError, match="100 times higher"):
        lab20.check_rule_test(RULE, never_fires)


def test_lab20_fired_needs_a_broken_threshold_and_a_firing_alert():
    firing = [{"alertname": "EdgeSLMClientSlowP95", "state": "firing"}]
    lab20.check_fired(firing, 0.05, 0.02)
    with pytest.raises(AssertionError, match="not above your threshold"):
        lab20.check_fired(firing, 0.01, 0.02)
    with pytest.raises(AssertionError, match="not firing"):
        lab20.check_fired([{"alertname": "EdgeSLMClientSlowP95", "state": "pending"}], 0.05, 0.02)
