"""Monitoring track (notebooks 18-20): health and latency, GenAI metrics and traces, a real Prometheus,
alerting rules and dashboards. A sibling of agents, quant and serving: it reaches models only through
`helpers.runtimes` and imports none of its siblings.

Heavy imports (OpenTelemetry, prometheus-client, psutil, matplotlib, ipywidgets) happen inside functions.
"""

from helpers.monitoring import dashboard, prometheus
from helpers.monitoring.alerts import (GRAFANA_DASHBOARD, RULE_TESTS, RULES, check_grafana_dashboard, fast_copy,
                                       load_rules, metric_names)
from helpers.monitoring.dashboard import LiveDashboard, plot_history
from helpers.monitoring.exposition import (ExpositionError, Sample, ScrapeError, buckets, delta, families,
                                           histogram_quantile, parse, rate, recorded_vllm_sample, scrape, select,
                                           value)
from helpers.monitoring.health import HEALTH_ROUTES, Health, probe, runtime_health, wait_ready
from helpers.monitoring.latency import (LatencyReport, StreamTiming, count_tokens, gpu_snapshot, measure,
                                        percentiles, process_snapshot, timed_stream)
from helpers.monitoring.load import LoadResult, run_load
from helpers.monitoring.prometheus import (INSTALL_HINT, NodeExporter, PortInUse, PrometheusNotInstalled,
                                           PrometheusServer, PromtoolError, installed, promtool_check_rules,
                                           promtool_test_rules, scrape_config)
from helpers.monitoring.telemetry import (CLIENT_METRICS, SEMCONV_VERSION, GenAITelemetry, TracedRuntime,
                                          TracedTools, span_tree)

__all__ = [
    "dashboard", "prometheus", "GRAFANA_DASHBOARD", "RULE_TESTS", "RULES", "check_grafana_dashboard", "fast_copy",
    "load_rules", "metric_names", "LiveDashboard", "plot_history", "ExpositionError", "Sample", "ScrapeError",
    "buckets", "delta", "families", "histogram_quantile", "parse", "rate", "recorded_vllm_sample", "scrape",
    "select", "value", "HEALTH_ROUTES", "Health", "probe", "runtime_health", "wait_ready", "LatencyReport",
    "StreamTiming", "count_tokens", "gpu_snapshot", "measure", "percentiles", "process_snapshot", "timed_stream",
    "LoadResult", "run_load", "INSTALL_HINT", "NodeExporter", "PortInUse", "PrometheusNotInstalled",
    "PrometheusServer", "PromtoolError", "installed", "promtool_check_rules", "promtool_test_rules",
    "scrape_config", "CLIENT_METRICS", "SEMCONV_VERSION", "GenAITelemetry", "TracedRuntime", "TracedTools",
    "span_tree",
]
