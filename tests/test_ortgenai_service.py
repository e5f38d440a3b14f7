"""The ONNX Runtime GenAI service (notebook 13): the OpenAI API, its errors, its limits, and the runtime that
starts it. Everything runs the shipped int4 model for real; servers listen on free ports of 127.0.0.1."""

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("onnxruntime_genai")
pytest.importorskip("fastapi")

import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from helpers.domain.tools import openai_tools  # noqa: E402
from helpers.paths import ONNX_DIR  # noqa: E402
from helpers.runtimes.base import RuntimeUnavailable, validate_call  # noqa: E402
from helpers.runtimes.wire import free_port  # noqa: E402
from helpers.runtimes.ortgenai_engine import GenAIEngine, check_folder, tool_guidance  # noqa: E402
from helpers.runtimes.ortgenai_service import ServiceSettings, create_app, serve_in_thread  # noqa: E402

MODEL = ONNX_DIR / "int4"
MODEL_ID = "edge-slm-int4"
TOOLS = openai_tools()
ORDER = [{"role": "user", "content": "Hi, where is my order #48213?"}]
# a tool whose argument must be 1,500 characters long: constrained decoding keeps the model writing it, so a
# generation lasts long enough to disconnect from, fill the queue behind, or run past a deadline
LONG_TOOL = [{"type": "function", "function": {"name": "write_essay", "parameters": {
    "type": "object", "properties": {"text": {"type": "string", "minLength": 1500}}, "required": ["text"]}}}]
LONG = {"model": MODEL_ID, "messages": [{"role": "user", "content": "write"}], "tools": LONG_TOOL,
        "tool_choice": "required", "max_tokens": 1900, "stream": True}


def body(**kw):
    return {"model": MODEL_ID, "messages": ORDER, "tools": TOOLS, **kw}


@pytest.fixture(scope="module")
def client():
    app = create_app(ServiceSettings(MODEL), autoload=False)
    app.state.service.load()
    with TestClient(app) as c:
        yield c


def live_server(**settings):
    """The app under uvicorn on a free port of 127.0.0.1 (for what needs a real socket)."""
    return serve_in_thread(ServiceSettings(MODEL, **settings))


def outcome_count(service, outcome: str) -> float:
    return service.metrics.registry.get_sample_value(
        "edge_slm_requests_total", {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "onnxruntime_genai",
                                    "gen_ai_request_model": MODEL_ID, "outcome": outcome}) or 0.0


# ---- readiness, model folder, port
def test_health_is_503_until_the_model_is_loaded_then_200():
    app = create_app(ServiceSettings(MODEL), autoload=False)
    with TestClient(app) as c:
        r = c.get("/health")
        assert r.status_code == 503 and r.json() == {"status": "loading"} and r.headers["retry-after"] == "1"
        chat = c.post("/v1/chat/completions", json=body())
        assert chat.status_code == 503 and chat.json()["error"]["code"] == "not_ready"
        app.state.service.load()
        r = c.get("/health")
        assert r.status_code == 200 and r.json()["model"] == MODEL_ID
        assert c.get("/live").json() == {"status": "alive"}


def test_missing_and_corrupt_model_folders_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No ORT GenAI model folder .*helpers export"):
        check_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no genai_config.json"):
        check_folder(tmp_path / "empty")
    bad = tmp_path / "corrupt"
    bad.mkdir()
    for p in MODEL.iterdir():
        (bad / p.name).write_bytes(p.read_bytes())
    (bad / "model.onnx").write_bytes(b"this is not an ONNX graph")
    with pytest.raises(ValueError, match="could not load .*damaged or incomplete"):
        GenAIEngine(bad).load()
    app = create_app(ServiceSettings(bad), autoload=False)
    app.state.service.load()
    with TestClient(app) as c:
        r = c.get("/health")
        assert r.status_code == 503 and r.json()["status"] == "failed" and "damaged" in r.json()["error"]
        assert "Traceback" not in r.text


def test_cli_reports_a_missing_folder_and_a_port_in_use(tmp_path, capsys):
    from helpers.cli import main

    assert main(["serve-ortgenai", "--model-dir", str(tmp_path / "nope"), "--port", str(free_port())]) == 2
    assert "No ORT GenAI model folder" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve-ortgenai", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err and "Traceback" not in err


# ---- bad requests: one line each, the right status, nothing echoed
@pytest.mark.parametrize("payload, status, code", [
    (b"{not json", 400, "invalid_json"),
    (b"[1, 2]", 400, "invalid_json"),
    (json.dumps(body(model="gpt-9")).encode(), 404, "model_not_found"),
    (json.dumps(body(messages=[{"role": "robot", "content": "hi"}])).encode(), 422, "invalid_fields"),
    (json.dumps(body(messages=[])).encode(), 422, "invalid_fields"),
    (json.dumps(body(messages=[{"role": "user"}])).encode(), 422, "invalid_fields"),
    (json.dumps(body(tools=[{"type": "function", "function": {"name": "x", "parameters": {"type": "foo"}}}])).encode(),
     422, "invalid_fields"),
    (json.dumps(body(tools=[{"type": "function", "function": {"name": "bad name!"}}])).encode(), 422,
     "invalid_fields"),
    (json.dumps(body(tool_choice={"type": "function", "function": {"name": "not_offered"}})).encode(), 400,
     "invalid_request"),
    (json.dumps(body(temperature=5)).encode(), 422, "invalid_fields"),
    (json.dumps(body(messages=[{"role": "user", "content": "order " * 3000}])).encode(), 413,
     "context_length_exceeded"),
    (json.dumps(body(messages=[{"role": "user", "content": "x" * 300_000}])).encode(), 413, "too_large"),
])
def test_bad_requests_get_a_clear_one_line_error(client, payload, status, code):
    r = client.post("/v1/chat/completions", content=payload, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and "\n" not in err["message"] and "Traceback" not in r.text
    assert "/work" not in err["message"] and str(MODEL) not in err["message"]


def test_unknown_model_route_is_404(client):
    assert client.get("/v1/models/nope").status_code == 404
    assert client.get(f"/v1/models/{MODEL_ID}").json()["id"] == MODEL_ID


# ---- answers
def test_tool_call_and_streaming_text(client):
    r = client.post("/v1/chat/completions", json=body()).json()
    call = r["choices"][0]["message"]["tool_calls"][0]["function"]
    assert r["choices"][0]["finish_reason"] == "tool_calls" and r["model"] == MODEL_ID
    assert call["name"] == "lookup_order" and json.loads(call["arguments"]) == {"order_id": "48213"}
    assert r["usage"]["completion_tokens"] > 0 and r["usage"]["prompt_tokens"] > 0
    lines = client.post("/v1/chat/completions", json=body(messages=[{"role": "user", "content": "hello"}],
                                                          stream=True, stream_options={"include_usage": True}))
    events = [ln[6:] for ln in lines.text.split("\n\n") if ln.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert len([c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]) > 3, "not streamed"
    assert text.strip() and chunks[-1]["usage"]["completion_tokens"] > 3


def test_a_tool_call_constrained_by_guidance_parses(client):
    """`tool_choice: required` on a greeting: the grammar allows only a well-formed call of an offered tool."""
    for choice, names in (("required", {t["function"]["name"] for t in TOOLS}), (
            {"type": "function", "function": {"name": "get_weather"}}, {"get_weather"})):
        r = client.post("/v1/chat/completions", json=body(messages=[{"role": "user", "content": "hello there"}],
                                                          tool_choice=choice)).json()
        calls = r["choices"][0]["message"]["tool_calls"]
        assert r["choices"][0]["finish_reason"] == "tool_calls" and calls[0]["function"]["name"] in names
        from helpers.runtimes.base import ToolCall

        call = ToolCall("c", calls[0]["function"]["name"], json.loads(calls[0]["function"]["arguments"]))
        assert validate_call(call, TOOLS) is None
    assert tool_guidance(TOOLS, "none") is None and tool_guidance(None) is None
    kind, grammar = tool_guidance(TOOLS, "required")
    assert kind == "lark_grammar" and grammar.startswith("start: calls\n") and "%json" in grammar


def test_api_key_guards_every_route_but_liveness():
    app = create_app(ServiceSettings(MODEL, api_key="correct-horse-battery"), autoload=False)
    app.state.service.load()
    with TestClient(app) as c:
        assert c.get("/live").status_code == 200
        for path in ("/health", "/metrics", "/v1/models"):
            r = c.get(path)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", path
            assert c.get(path, headers={"Authorization": "Bearer wrong-key-xxxx"}).status_code == 401
        assert c.post("/v1/chat/completions", json=body()).status_code == 401
        ok = {"Authorization": "Bearer correct-horse-battery"}
        assert c.get("/v1/models", headers=ok).status_code == 200
        assert c.post("/v1/chat/completions", json=body(), headers=ok).status_code == 200
        assert "gen_ai_server_request_duration_seconds" in c.get("/metrics", headers=ok).text
        assert "access-control-allow-origin" not in c.get("/live", headers={"Origin": "http://evil.example"}).headers


# ---- over a real socket: concurrency, queue, disconnects, deadlines
PROMPTS = ["Hi, where is my order #48213?", "what's the weather in Oslo", "hello", "customer C-7363, who is that?",
           "is SKU-FKF in stock?", "thanks, bye"]


def test_concurrent_answers_equal_sequential_ones_and_the_queue_refuses_when_full():
    with live_server(max_concurrency=2, max_queue=8) as (url, service):
        def ask(prompt: str, stream: bool) -> str:
            r = httpx.post(url + "/v1/chat/completions", timeout=60,
                           json=body(messages=[{"role": "user", "content": prompt}], stream=stream))
            assert r.status_code == 200, r.text
            if not stream:
                return json.dumps(r.json()["choices"][0]["message"].get("tool_calls") and
                                  [c["function"] for c in r.json()["choices"][0]["message"]["tool_calls"]]
                                  or r.json()["choices"][0]["message"]["content"])
            chunks = [json.loads(e[6:]) for e in r.text.split("\n\n") if e.startswith("data: {")]
            assert r.text.rstrip().endswith("data: [DONE]")
            calls = [tc["function"] for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or []]
            return json.dumps(calls or "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks))

        for stream in (False, True):
            sequential = [ask(p, stream) for p in PROMPTS]
            with ThreadPoolExecutor(len(PROMPTS)) as pool:
                concurrent = list(pool.map(ask, PROMPTS, [stream] * len(PROMPTS)))
            assert concurrent == sequential, f"stream={stream}"
        assert outcome_count(service, "ok") == 4 * len(PROMPTS)

    with live_server(max_concurrency=1, max_queue=0) as (url, service), httpx.Client(timeout=60) as http:
        with http.stream("POST", url + "/v1/chat/completions", json=LONG) as first:
            assert first.status_code == 200
            lines = first.iter_lines()  # kept: an abandoned iterator closes the connection
            next(lines)  # the first chunk: this request holds the only slot
            refused = http.post(url + "/v1/chat/completions", json=body())
            assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
            assert refused.json()["error"]["code"] == "queue_full"
        deadline = time.time() + 10  # the hung-up stream stops at its next token and frees the slot
        while service.limiter.running and time.time() < deadline:
            time.sleep(0.02)
        assert http.post(url + "/v1/chat/completions", json=body()).status_code == 200  # the slot came back


def test_a_client_that_disconnects_mid_stream_does_not_hurt_the_next_request():
    with live_server(max_concurrency=1, max_queue=4) as (url, service), httpx.Client(timeout=60) as http:
        with http.stream("POST", url + "/v1/chat/completions", json=LONG) as r:
            lines = r.iter_lines()
            next(lines)  # then hang up while the model is still writing
        t0 = time.perf_counter()
        r = http.post(url + "/v1/chat/completions", json=body())
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["tool_calls"]
        deadline = time.time() + 10
        while outcome_count(service, "cancelled") < 1 and time.time() < deadline:
            time.sleep(0.05)
        assert outcome_count(service, "cancelled") == 1, "the abandoned generation was not stopped"
        assert service.limiter.running == 0 and service.limiter.waiting == 0
        assert time.perf_counter() - t0 < 30


def test_a_stream_that_fails_midway_ends_with_an_error_event_not_done():
    import openai

    with live_server(request_timeout_s=0.5) as (url, service), httpx.Client(timeout=60) as http:
        text = http.post(url + "/v1/chat/completions", json=LONG).text
        assert "event: error" in text and '"code": "timeout"' in text and "[DONE]" not in text
        client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
        with pytest.raises(openai.APIError, match="deadline"):
            for _ in client.chat.completions.create(**dict(LONG)):
                pass
        assert http.post(url + "/v1/chat/completions", json=body(max_tokens=8)).status_code == 200
        assert outcome_count(service, "timeout") == 2


# ---- the runtime that starts the service
def test_runtime_starts_the_service_answers_and_stops_it():
    from helpers.runtimes import get_runtime

    with get_runtime("ortgenai-service", api_key="runtime-test-key") as rt:
        assert [s for _, s, _ in rt.health_log][-1] == 200
        res = rt.chat(ORDER, TOOLS)
        assert res.answered_by == f"ortgenai-service/{MODEL_ID}"
        assert res.tool_calls and res.tool_calls[0].name == "lookup_order" and res.error is None
        assert httpx.get(rt.server_url + "/v1/models").status_code == 401  # the key is on
        proc, port = rt.proc, rt.port
    assert proc.poll() is not None and rt.proc is None
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # closed connections may linger in TIME_WAIT
        s.bind(("127.0.0.1", port))
        s.listen()  # nothing listens there any more


def test_runtime_reports_a_corrupt_folder(tmp_path):
    from helpers.runtimes.ortgenai_runtime import OrtGenAIServiceRuntime

    bad = tmp_path / "int4"
    bad.mkdir()
    for p in MODEL.iterdir():
        (bad / p.name).write_bytes(b"garbage" if p.name == "model.onnx" else p.read_bytes())
    with pytest.raises(RuntimeUnavailable, match="damaged or incomplete"):
        OrtGenAIServiceRuntime(bad)
    with pytest.raises(RuntimeUnavailable, match="No ORT GenAI model folder"):
        OrtGenAIServiceRuntime(tmp_path / "missing")
