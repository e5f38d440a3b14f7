"""helpers.monitoring: exposition parsing and PromQL arithmetic, health probes, latency, GenAI telemetry names."""

import http.server
import math
import threading

import pytest

from helpers import monitoring as mon
from helpers.runtimes.base import Availability, ChatResult, Runtime, StreamEvent

# ---------------------------------------------------------------- exposition and PromQL arithmetic

TEXT = """# HELP lat_seconds Latency.
# TYPE lat_seconds histogram
lat_seconds_bucket{model="a",le="0.1"} 2
lat_seconds_bucket{model="a",le="0.5"} 6
lat_seconds_bucket{model="a",le="1.0"} 8
lat_seconds_bucket{model="a",le="+Inf"} 10
lat_seconds_sum{model="a"} 7.5
lat_seconds_count{model="a"} 10
# TYPE req_total counter
req_total{outcome="ok"} 90
req_total{outcome="err"} 10
"""


def test_parse_select_value_and_families():
    s = mon.parse(TEXT)
    assert mon.value(s, "req_total") == 100
    assert mon.value(s, "req_total", outcome="err") == 10
    assert mon.families(TEXT) == {"lat_seconds": "histogram", "req": "counter"}
    assert mon.buckets(s, "lat_seconds")[-1] == (math.inf, 10)


@pytest.mark.parametrize("q,want", [(0.5, 0.3), (0.1, 0.05), (0.7, 0.625), (0.9, 1.0), (1.0, 1.0)])
def test_histogram_quantile_matches_prometheus_interpolation(q, want):
    # rank q*10: 5 -> 0.1 + 0.4*(5-2)/4 = 0.4 ... computed by hand from Prometheus's definition
    cum = [(0.1, 2), (0.5, 6), (1.0, 8), (math.inf, 10)]
    want = {0.5: 0.1 + 0.4 * 3 / 4, 0.1: 0.05, 0.7: 0.5 + 0.5 * 1 / 2, 0.9: 1.0, 1.0: 1.0}[q]
    assert mon.histogram_quantile(q, cum) == pytest.approx(want)


def test_histogram_quantile_edge_cases():
    assert math.isnan(mon.histogram_quantile(0.5, [(1.0, 0), (math.inf, 0)]))
    with pytest.raises(ValueError, match=r"\+Inf"):
        mon.histogram_quantile(0.5, [(1.0, 3)])
    with pytest.raises(ValueError, match="between 0 and 1"):
        mon.histogram_quantile(95, [(1.0, 3), (math.inf, 3)])


def test_rate_and_delta_between_scrapes():
    before = mon.parse(TEXT)
    after = mon.parse(TEXT.replace("} 90", "} 150").replace("} 10\n", "} 30\n"))
    assert mon.rate(before, after, 10.0, "req_total") == pytest.approx((180 - 100) / 10)
    d = {(x.name, x.labels.get("outcome")): x.value for x in mon.delta(before, after)}
    assert d[("req_total", "ok")] == 60
    with pytest.raises(ValueError):
        mon.rate(before, after, 0, "req_total")


@pytest.mark.parametrize("bad", ['req_total{outcome="ok"} ninety\n', 'req_total{outcome="ok} 1\n',
                                 'req_total{outcome="ok"}\n'])
def test_malformed_exposition_is_a_clear_error(bad):
    with pytest.raises(mon.ExpositionError, match="not Prometheus exposition text"):
        mon.parse(bad)


def test_a_bucket_bound_that_is_not_a_number_is_a_clear_error():
    with pytest.raises(mon.ExpositionError, match="le="):
        mon.buckets(mon.parse('# TYPE x histogram\nx_bucket{le="abc"} 1\n'), "x")


def test_recorded_vllm_sample_is_labelled_and_parses():
    text = mon.recorded_vllm_sample()
    assert text.startswith("# RECORDED, not live")
    fams = mon.families(text)
    assert fams == {"vllm:iteration_tokens_total": "histogram"}
    with pytest.raises(ValueError, match=r"\+Inf"):  # the documentation cut the excerpt
        mon.histogram_quantile(0.5, mon.buckets(mon.parse(text), "vllm:iteration_tokens_total"))


# ---------------------------------------------------------------- health: a loopback server that loads, then is ready

class _Loading(http.server.BaseHTTPRequestHandler):
    ready = False

    def do_GET(self):
        if self.path == "/metrics":
            self.send_response(404)
            self.end_headers()
            return
        code = 200 if type(self).ready else 503
        body = b'{"status":"ok"}' if code == 200 else b'{"error":{"code":503,"message":"Loading model"}}'
        self.send_response(code)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def loading_server():
    handler = type("H", (_Loading,), {"ready": False})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv, handler
    srv.shutdown()
    srv.server_close()


def test_probe_tells_alive_from_ready(loading_server):
    srv, handler = loading_server
    url = f"http://127.0.0.1:{srv.server_port}"
    h = mon.probe(url, "llama-server")
    assert (h.live, h.ready, h.status) == (True, False, 503) and "Loading model" in h.detail
    handler.ready = True
    h = mon.probe(url, "llama-server")
    assert (h.live, h.ready, h.status) == (True, True, 200)
    # Ollama's ready answer must say "Ollama is running": a JSON 200 is not Ollama
    assert not mon.probe(url, "ollama").ready


def test_probe_of_a_down_server_and_unknown_kind():
    h = mon.probe("http://127.0.0.1:1", "vllm", timeout=0.5)
    assert not h.live and not h.ready and h.status is None and "down" in h.line()
    with pytest.raises(ValueError, match="unknown server kind"):
        mon.probe("http://127.0.0.1:1", "tgi")


def test_scrape_errors_name_the_cause(loading_server):
    srv, _ = loading_server
    with pytest.raises(mon.ScrapeError, match="--metrics"):
        mon.scrape(f"http://127.0.0.1:{srv.server_port}/metrics")
    with pytest.raises(mon.ScrapeError, match="is the server running"):
        mon.scrape("http://127.0.0.1:1/metrics", timeout=0.5)


# ---------------------------------------------------------------- latency


class _Clock:
    def __init__(self, ticks):
        self.ticks = iter(ticks)

    def __call__(self):
        return next(self.ticks)


class _Scripted(Runtime):
    """A test double with fixed replies (never shown to learners as a runtime)."""

    name = "scripted"

    def __init__(self, fail_on: str = "boom"):
        self.fail_on = fail_on

    @property
    def model(self):
        return "script-1"

    def availability(self):
        return Availability(self.name, True, "test double")

    def chat(self, messages, tools=None, **kw):
        if self.fail_on in messages[-1]["content"]:
            raise ValueError("prompt does not fit")
        if "refuse" in messages[-1]["content"]:  # what OpenAICompatRuntime returns for an HTTP 400
            return ChatResult(runtime=self.name, model=self.model, finish_reason="error",
                              error={"type": "server_error", "message": "HTTP 400: context window exceeded"})
        return ChatResult(runtime=self.name, model=self.model, content="hello there", prompt_tokens=5,
                          completion_tokens=3)

    def stream(self, messages, tools=None, **kw):
        for piece in ("hel", "lo", " there"):
            yield StreamEvent(delta=piece)
        yield StreamEvent(result=self.chat(messages, tools))


def test_timed_stream_ttft_itl_tpot_from_arrivals():
    # t0=0, deltas arrive at 0.5, 0.6, 0.8, the stream ends at 0.9
    t = mon.timed_stream(_Scripted(), [{"role": "user", "content": "hi"}], count=lambda s: 4,
                         clock=_Clock([0.0, 0.5, 0.6, 0.8, 0.9]))
    assert t.ttft == pytest.approx(0.5) and t.e2e == pytest.approx(0.8)
    assert t.itl == pytest.approx([0.1, 0.2]) and t.chunks == 3
    assert t.tpot == pytest.approx((0.8 - 0.5) / 3) and t.answered_by == "scripted/script-1"


def test_tokens_are_counted_with_the_model_tokenizer_not_words():
    text = "Order 10037: shipped, arriving Tuesday!"
    n = mon.count_tokens(text)
    assert n > len(text.split())  # digits are split and punctuation is its own token


def test_percentiles_and_empty_input():
    p = mon.percentiles(range(1, 101))
    assert p["p50"] == pytest.approx(50.5) and p["p99"] == pytest.approx(99.01)
    assert math.isnan(mon.percentiles([])["p95"])


def test_gpu_snapshot_says_why_when_there_is_no_gpu():
    g = mon.gpu_snapshot()
    assert g["available"] in (True, False)
    if not g["available"]:
        assert g["reason"]
    else:
        assert g["gpus"] and {"memory_used_mb", "utilization_percent"} <= set(g["gpus"][0])


def test_process_snapshot_reads_this_process():
    snap = mon.process_snapshot(interval=0.05)
    assert snap["rss_mb"] > 1 and 0 <= snap["machine_memory_percent"] <= 100


# ---------------------------------------------------------------- GenAI telemetry: the names are pinned here

PINNED_PROMETHEUS = {"gen_ai_client_operation_duration_seconds", "gen_ai_client_token_usage",
                     "gen_ai_client_operation_time_to_first_chunk_seconds",
                     "gen_ai_client_operation_time_per_output_chunk_seconds"}


def _agent_run(capture: bool):
    tel = mon.GenAITelemetry(capture_content=capture)
    rt = mon.TracedRuntime(_Scripted(), tel, provider="llama_cpp")

    class Box:
        names = ["get_order_status"]

        def call(self, name, arguments):
            return {"status": "shipped"}

    tools = mon.TracedTools(Box(), tel)
    with tel.invoke_agent("shop-agent", model=rt.model):
        rt.chat([{"role": "user", "content": "where is order 10037?"}])
        tools.call("get_order_status", {"order_id": "10037"})
        list(rt.stream([{"role": "user", "content": "thanks"}]))
    with pytest.raises(ValueError):
        rt.chat([{"role": "user", "content": "boom"}])
    return tel


def test_span_names_kinds_nesting_and_attributes():
    tel = _agent_run(capture=False)
    try:
        assert mon.span_tree(tel.spans()) == [
            "invoke_agent shop-agent [INTERNAL]", "  chat script-1 [CLIENT]",
            "  execute_tool get_order_status [INTERNAL]", "  chat script-1 [CLIENT]",
            "chat script-1 [CLIENT] error.type=ValueError"]
        chat = next(s for s in tel.spans() if s.name == "chat script-1")
        a = chat.attributes
        assert (a["gen_ai.operation.name"], a["gen_ai.provider.name"], a["gen_ai.request.model"]) == (
            "chat", "llama_cpp", "script-1")
        assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (5, 3)
        assert "gen_ai.system" not in a  # deprecated name, renamed gen_ai.provider.name
        for s in tel.spans():  # no content without opting in
            assert not any(k in s.attributes for k in ("gen_ai.input.messages", "gen_ai.output.messages",
                                                         "gen_ai.tool.call.arguments", "gen_ai.tool.call.result"))
    finally:
        tel.close()


def test_content_only_when_opted_in():
    tel = _agent_run(capture=True)
    try:
        chat = next(s for s in tel.spans() if s.name == "chat script-1")
        assert "where is order 10037?" in chat.attributes["gen_ai.input.messages"]
        tool = next(s for s in tel.spans() if s.name.startswith("execute_tool"))
        assert "10037" in tool.attributes["gen_ai.tool.call.arguments"]
    finally:
        tel.close()


def test_metric_names_as_scraped_are_pinned():
    tel = _agent_run(capture=False)
    try:
        assert mon.SEMCONV_VERSION == "1.41.0"
        assert set(mon.CLIENT_METRICS.values()) == PINNED_PROMETHEUS
        url = tel.serve_metrics()
        assert url.startswith("http://127.0.0.1:")
        samples = mon.parse(mon.scrape(url))
        fams = {s.name for s in samples}
        for name in PINNED_PROMETHEUS:
            assert name + "_count" in fams, f"{name} not scraped"
        usage = mon.select(samples, "gen_ai_client_token_usage_sum", gen_ai_token_type="input")
        assert usage and usage[0].labels["gen_ai_operation_name"] == "chat"
        assert mon.value(samples, "gen_ai_client_token_usage_sum", gen_ai_token_type="output") == 6  # 3 + 3
        failed = mon.select(samples, "gen_ai_client_operation_duration_seconds_count", error_type="ValueError")
        assert failed and failed[0].value == 1
    finally:
        tel.close()


def test_a_refused_request_is_a_failed_operation_with_its_status_code():
    tel = mon.GenAITelemetry()
    try:
        rt = mon.TracedRuntime(_Scripted(), tel)
        res = rt.chat([{"role": "user", "content": "please refuse"}])
        assert res.finish_reason == "error"  # the runtime's own answer, untouched
        span = tel.spans()[-1]
        assert span.attributes["error.type"] == "400" and span.status.status_code.name == "ERROR"
        samples = mon.parse(tel.metrics_text())
        assert mon.value(samples, "gen_ai_client_operation_duration_seconds_count", error_type="400") == 1
    finally:
        tel.close()


def test_wait_ready_records_each_change_of_state(loading_server):
    srv, handler = loading_server
    threading.Timer(0.3, lambda: setattr(handler, "ready", True)).start()
    states = mon.wait_ready(f"http://127.0.0.1:{srv.server_port}", "llama-server", timeout=5, interval=0.05)
    assert [(h.live, h.ready) for _, h in states] == [(True, False), (True, True)]
    assert states[-1][0] >= 0.25
    gone = mon.wait_ready("http://127.0.0.1:1", "vllm", timeout=0.2, interval=0.05)
    assert not gone[-1][1].live


def test_run_load_counts_errors_by_type_and_stops_at_max_requests():
    def request(i):
        if i % 4 == 3:
            raise TimeoutError("slow")

    ticks = []
    res = mon.run_load(request, duration_s=5, concurrency=2, max_requests=20, on_tick=ticks.append, tick_s=0.05)
    assert res.requests == 20 and res.errors == {"TimeoutError": 5} and res.error_rate == pytest.approx(0.25)
    assert res.seconds < 5 and "TimeoutError 5" in res.line()
    with pytest.raises(ValueError):
        mon.run_load(request, duration_s=0)


def test_live_dashboard_keeps_history_and_plots_it():
    values = iter([1.0, 2.0, float("nan")])
    dash = mon.LiveDashboard(lambda: {"p95 latency s": next(values)})
    for _ in range(3):
        dash.refresh()
    assert [h["p95 latency s"] for h in dash.history][:2] == [1.0, 2.0]
    assert dash.widget is None or "n/a" in dash.widget.value
    fig = mon.plot_history(dash.history)
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "p95 latency s"
