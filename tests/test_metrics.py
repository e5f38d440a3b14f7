"""The Prometheus names the workbook's servers emit are pinned here (GenAI semconv v1.41.0 as exported)."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers.runtimes.metrics import OTEL_TO_PROMETHEUS, SEMCONV_VERSION, ServerMetrics


def _samples(m: ServerMetrics) -> dict[str, list]:
    text, ctype = m.exposition()
    assert ctype.startswith("text/plain")
    out: dict[str, list] = {}
    for fam in text_string_to_metric_families(text.decode()):
        for s in fam.samples:
            out.setdefault(s.name, []).append(s)
    return out


def test_names_pinned():
    assert SEMCONV_VERSION == "1.41.0"
    m = ServerMetrics("llama_cpp")
    with m.track("edge-slm") as rec:
        rec.prompt_tokens = 12
        rec.first_token()
        rec.output_tokens = 5
    names = set(_samples(m))
    for prom in OTEL_TO_PROMETHEUS.values():
        assert f"{prom}_bucket" in names and f"{prom}_count" in names
    assert {"edge_slm_prompt_tokens_total", "edge_slm_generation_tokens_total", "edge_slm_requests_total",
            "edge_slm_requests_running", "edge_slm_requests_waiting", "process_resident_memory_bytes"} <= names


def test_values_and_labels():
    m = ServerMetrics("onnxruntime_genai")
    with m.track("edge-slm-int4") as rec:
        rec.prompt_tokens, rec.output_tokens = 7, 3
        rec.first_token()
    s = _samples(m)
    (count,) = s["gen_ai_server_time_to_first_token_seconds_count"]
    assert count.value == 1
    assert count.labels == {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "onnxruntime_genai",
                            "gen_ai_request_model": "edge-slm-int4"}
    assert s["edge_slm_prompt_tokens_total"][0].value == 7
    assert s["edge_slm_generation_tokens_total"][0].value == 3
    assert s["edge_slm_requests_running"][0].value == 0


def test_failure_counts_error_and_skips_latency_histograms():
    m = ServerMetrics("llama_cpp")
    with pytest.raises(TimeoutError), m.track("edge-slm") as rec:
        rec.first_token()
        raise TimeoutError
    s = _samples(m)
    outcomes = {x.labels["outcome"]: x.value for x in s["edge_slm_requests_total"]}
    assert outcomes == {"TimeoutError": 1}
    assert "gen_ai_server_time_to_first_token_seconds_count" not in s  # failed requests get no TTFT
    (dur,) = s["gen_ai_server_request_duration_seconds_count"]
    assert dur.labels["error_type"] == "TimeoutError" and dur.value == 1


def test_two_servers_in_one_process_do_not_collide():
    a, b = ServerMetrics("a"), ServerMetrics("b")
    with a.track("m"):
        pass
    assert _samples(b).get("edge_slm_requests_total", []) == []
