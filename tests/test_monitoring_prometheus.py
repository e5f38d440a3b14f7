"""Alerting rules with promtool, the Grafana dashboard's queries, and a real Prometheus on 127.0.0.1
(skipped with a message where Debian's `prometheus` package is not installed)."""

import json
import shutil
import socket

import pytest

from helpers import monitoring as mon
from helpers.monitoring import prometheus as prom

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool not installed: `apt-get install prometheus` (see README)")
needs_prometheus = pytest.mark.skipif(shutil.which("prometheus") is None,
                                      reason="prometheus not installed: `apt-get install prometheus` (see README)")


def test_rules_carry_the_course_thresholds_and_queue_alerts():
    rules = {r["alert"]: r for r in mon.load_rules()}
    assert "> 2" in rules["EdgeSLMSlowResponses"]["expr"]
    assert "> 0.05" in rules["EdgeSLMHighErrorRate"]["expr"]
    assert "> 0.85" in rules["HostMemoryHigh"]["expr"]
    assert "vllm:num_requests_waiting" in rules["VLLMQueueBacklog"]["expr"]
    assert "llamacpp:requests_deferred" in rules["LlamaServerRequestsDeferred"]["expr"]
    assert "edge_slm_requests_waiting" in rules["EdgeSLMQueueBacklog"]["expr"]


def test_a_file_that_is_not_a_rule_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.yml"
    bad.write_text("alerts:\n  - name: x\n")
    with pytest.raises(ValueError, match="groups"):
        mon.load_rules(bad)
    bad.write_text("groups: [\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        mon.load_rules(bad)


@needs_promtool
def test_promtool_checks_and_unit_tests_the_rules():
    assert "SUCCESS" in mon.promtool_check_rules(mon.RULES)
    assert "SUCCESS" in mon.promtool_test_rules(mon.RULE_TESTS)


@needs_promtool
def test_promtool_rejects_a_broken_rule_file(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: rate(foo[5m] > 1\n")
    with pytest.raises(mon.PromtoolError, match="unclosed left parenthesis"):
        mon.promtool_check_rules(bad)


@needs_promtool
def test_promtool_test_fails_when_a_threshold_is_wrong(tmp_path):
    # the same tests against rules whose error threshold was loosened to 50 %: the 10 % case must fail
    text = mon.RULES.read_text().replace("> 0.05", "> 0.5")
    (tmp_path / "alerts.yml").write_text(text)
    shutil.copy(mon.RULE_TESTS, tmp_path / "alerts_test.yml")
    with pytest.raises(mon.PromtoolError, match="EdgeSLMHighErrorRate"):
        mon.promtool_test_rules(tmp_path / "alerts_test.yml")


@needs_promtool
def test_fast_copy_keeps_expressions_and_thresholds(tmp_path):
    fast = mon.fast_copy(tmp_path / "fast.yml", window="15s")
    assert "SUCCESS" in mon.promtool_check_rules(fast)
    slow = {r["alert"]: r for r in mon.load_rules()}
    for r in mon.load_rules(fast):
        assert r["for"] == "0s" and "[5m]" not in r["expr"]
        assert r["expr"].replace("[15s]", "[5m]") == slow[r["alert"]]["expr"]


def test_promtool_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(mon.PrometheusNotInstalled, match="apt-get install prometheus"):
        mon.promtool_check_rules(mon.RULES)
    with pytest.raises(mon.PrometheusNotInstalled, match="apt-get install prometheus"):
        mon.PrometheusServer("build/never").start(mon.scrape_config({}))


def _emitted_names() -> set[str]:
    """Family and series names that the workbook's servers and clients really expose."""
    from helpers.runtimes.metrics import ServerMetrics

    sm = ServerMetrics("llama_cpp")
    with sm.track("m") as rec:
        rec.first_token()
        rec.output_tokens = 2
    text = sm.exposition()[0].decode()
    tel = mon.GenAITelemetry()
    try:
        inv = tel.handler.inference("llama_cpp", request_model="m")
        inv.input_tokens, inv.output_tokens = 3, 2
        inv.stop()
        text += tel.metrics_text()
    finally:
        tel.close()
    samples = mon.parse(text)
    return {s.name for s in samples} | set(mon.families(text))


def test_grafana_dashboard_is_json_and_queries_only_emitted_metrics(tmp_path):
    lines = mon.check_grafana_dashboard(mon.GRAFANA_DASHBOARD, _emitted_names())
    assert len(lines) >= 6
    doc = json.loads(mon.GRAFANA_DASHBOARD.read_text())
    doc["panels"][0]["targets"][0]["expr"] = "rate(gen_ai_client_latency_seconds_bucket[1m])"  # an invented name
    bad = tmp_path / "d.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="gen_ai_client_latency_seconds_bucket"):
        mon.check_grafana_dashboard(bad, _emitted_names())
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        mon.check_grafana_dashboard(bad, set())


def test_scrape_config_refuses_foreign_targets():
    cfg = mon.scrape_config({"app": ["127.0.0.1:8000"]})
    assert cfg["scrape_configs"][0]["static_configs"][0]["targets"] == ["127.0.0.1:8000"]
    with pytest.raises(ValueError, match="not on this machine"):
        mon.scrape_config({"app": ["10.0.0.5:8000"]})


def test_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(mon.PortInUse, match=f"port {port}"):
            prom.check_port_free(port)
        if shutil.which("prometheus"):
            with pytest.raises(mon.PortInUse):
                mon.PrometheusServer(tmp_path, port=port).start(mon.scrape_config({}))


@needs_prometheus
def test_real_prometheus_scrapes_a_live_and_a_dead_target(tmp_path):
    tel = mon.GenAITelemetry()
    try:
        inv = tel.handler.inference("llama_cpp", request_model="m")
        inv.stop()
        live = tel.serve_metrics().split("//")[1].split("/")[0]
        dead = f"127.0.0.1:{prom.free_port()}"  # nothing listens there
        with mon.PrometheusServer(tmp_path).start(mon.scrape_config({"client": [live], "gone": [dead]},
                                                                    interval="500ms")) as p:
            assert {t["job"]: t["health"] for t in p.wait_first_scrape()} == {"client": "up", "gone": "down"}
            up = {r["metric"]["job"]: r["value"] for r in p.query("up")}
            assert up == {"client": 1.0, "gone": 0.0}
            gone = next(t for t in p.targets() if t["job"] == "gone")
            assert gone["health"] == "down" and "refused" in gone["error"]
            assert p.query_value('sum(gen_ai_client_operation_duration_seconds_count{job="client"})') == 1.0
            with pytest.raises(ValueError, match="refused"):
                p.query("sum(rate(up[1m])")  # malformed PromQL
    finally:
        tel.close()


@needs_promtool
def test_check_alerts_command(tmp_path, capsys):
    from helpers.cli import main

    assert main(["check-alerts"]) == 0
    assert "SUCCESS" in capsys.readouterr().out
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: up ==\n")
    assert main(["check-alerts", "--rules", str(bad)]) == 1
    assert "promtool check rules failed" in capsys.readouterr().err
