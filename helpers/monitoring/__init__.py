"""Monitoring (notebooks 18-20): health and latency, GenAI metrics and traces, a real Prometheus, alerting
rules and dashboards. A sibling of agents, quant and serving: it reaches models only through
`helpers.runtimes` and imports none of its siblings. The names below load their module on first use."""

from helpers.face import lazy_face

__getattr__, __dir__, __all__ = lazy_face(__name__, {
    "alerts": ["GRAFANA_DASHBOARD", "RULE_TESTS", "RULES", "check_grafana_dashboard", "fast_copy", "load_rules",
               "metric_names"],
    "dashboard": ["LiveDashboard", "plot_history"],
    "exposition": ["ExpositionError", "Sample", "ScrapeError", "buckets", "delta", "families", "histogram_quantile",
                   "parse", "rate", "recorded_vllm_sample", "scrape", "select", "value"],
    "health": ["HEALTH_ROUTES", "Health", "probe", "runtime_health", "wait_ready"],
    "latency": ["LatencyReport", "StreamTiming", "count_tokens", "gpu_snapshot", "measure", "percentiles",
                "process_snapshot", "timed_stream"],
    "load": ["LoadResult", "run_load"],
    "prometheus": ["INSTALL_HINT", "NodeExporter", "PortInUse", "PrometheusNotInstalled", "PrometheusServer",
                   "PromtoolError", "free_port", "installed", "promtool_check_rules", "promtool_test_rules",
                   "scrape_config", "version"],
    "telemetry": ["CLIENT_METRICS", "SEMCONV_VERSION", "GenAITelemetry", "TracedRuntime", "TracedTools",
                  "span_tree"],
})
