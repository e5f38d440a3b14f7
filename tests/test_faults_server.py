"""Fault suite of the workbook's server, `python -m helpers serve` (issue 15): each case of the issue is tried
against the real server on 127.0.0.1 with the shipped model, started once per module with an API key.

What must hold: client errors get 400/401/403/404/413/415/422 with one line and no path; the server never
dies; concurrent streams are identical to their sequential answers; streams check before answering 200.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("llama_cpp")

from helpers.paths import GGUF_DIR, ROOT  # noqa: E402
from helpers.runtimes.openai_compat import free_port  # noqa: E402

KEY = "test-key-0123456789"
MODEL = "edge-slm-f16"
GGUF = GGUF_DIR / "edge-slm-f16.gguf"
ASK = [{"role": "user", "content": "where is order 48213?"}]


def _start(*args: str, env: dict[str, str] | None = None, port: int | None = None) -> tuple[subprocess.Popen, str]:
    port = port or free_port()
    proc = subprocess.Popen([sys.executable, "-m", "helpers", "serve", "--port", str(port), *args], cwd=str(ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stdout.read()}")
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server not ready in 60 s")


def _stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


@pytest.fixture(scope="module")
def server():
    if not GGUF.exists():
        pytest.skip("no shipped GGUF")
    proc, base = _start(env={"EDGE_SLM_API_KEY": KEY, "API_KEY": "unrelated-shell-variable"})
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    yield client
    client.close()
    log = _stop(proc)
    assert "Traceback" not in log, log  # no request made the server print a traceback


def chat(client, timeout=60, **body):
    return client.post("/v1/chat/completions", json={"model": MODEL, "messages": ASK, "temperature": 0, **body},
                       timeout=timeout)


def assert_client_error(resp, status: int, needle: str = "") -> dict:
    assert resp.status_code == status, (resp.status_code, resp.text)
    err = resp.json()["error"]
    assert err["message"] and "\n" not in err["message"] and needle in err["message"]
    for leak in ("Traceback", ".py", str(ROOT), "/usr/", "site-packages"):
        assert leak not in resp.text
    return err


def alive(client) -> None:
    assert client.get("/health").status_code == 200
    r = chat(client, max_tokens=8)
    assert r.status_code == 200 and r.json()["model"] == MODEL


# ------------------------------------------------------------------ grammar
@pytest.mark.parametrize("grammar,needle", [
    ('root ::= "yes" | (', "does not compile"),            # syntax error
    ('answer ::= "yes" | "no"', "no `root"),               # no root rule
    ('root ::= undefined-rule', "does not compile"),       # undefined rule
    ('root ::= root "x"', "does not compile"),             # left recursion
    ("root ::= " + "(" * 200 + '"a"' + ")" * 200, "nests"),  # deep nesting
])
def test_a_bad_grammar_is_refused_and_the_server_lives(server, grammar, needle):
    err = assert_client_error(chat(server, grammar=grammar, max_tokens=8), 400, needle)
    assert err["param"] == "grammar"
    alive(server)


def test_a_good_grammar_constrains_the_answer(server):
    r = chat(server, grammar='root ::= "yes" | "no"', max_tokens=8)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] in ("yes", "no")


# ------------------------------------------------------------------ origin, host, key
def test_a_web_page_from_another_origin_is_refused(server):
    r = server.post("/v1/chat/completions", json={"model": MODEL, "messages": ASK},
                    headers={"Origin": "https://evil.example"})
    assert_client_error(r, 403, "another origin")
    pre = server.options("/v1/chat/completions", headers={"Origin": "https://evil.example",
                                                          "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers
    assert "access-control-allow-credentials" not in pre.headers
    # a "simple" cross-site form post (no preflight in a browser) is refused before any work
    form = server.post("/v1/chat/completions", content=json.dumps({"model": MODEL, "messages": ASK}),
                       headers={"Content-Type": "text/plain"})
    assert_client_error(form, 415, "application/json")


def test_a_foreign_host_header_is_refused(server):
    assert_client_error(server.get("/v1/models", headers={"Host": "attacker.example:80"}), 400, "Host")


def test_every_route_but_health_needs_the_key(server):
    bare = httpx.Client(base_url=str(server.base_url), timeout=30)
    try:
        assert bare.get("/health").status_code == 200
        assert bare.get("/health").json() == {"status": "ok"}  # a bare probe: nothing more
        for method, path in (("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("GET", "/metrics")):
            r = bare.request(method, path, json={"model": MODEL, "messages": ASK})
            assert_client_error(r, 401, "API key")
        wrong = bare.get("/v1/models", headers={"Authorization": "Bearer wrong-key-0123456789"})
        assert_client_error(wrong, 401)
        for path in ("/docs", "/openapi.json", "/redoc"):  # no documentation routes to probe
            assert server.get(path).status_code == 404
        raw = server.post("/v1/completions", json={"model": MODEL, "prompt": "<s><|user|>hi"})
        assert_client_error(raw, 404, "no route")  # no raw-prompt route
    finally:
        bare.close()


# ------------------------------------------------------------------ validation at the edge
@pytest.mark.parametrize("body,status,needle", [
    ({"max_tokens": -5}, 422, "max_tokens"),
    ({"max_tokens": 0}, 422, "max_tokens"),
    ({"max_tokens": 10**9}, 400, "context"),
    ({"n": 2}, 400, "n:"),
    ({"tool_choice": "required"}, 400, "tool_choice"),
    ({"logprobs": True}, 400, "logprobs"),
    ({"stop": ["\n"]}, 400, "stop"),
    ({"top_p": 0.5}, 400, "top_p"),
    ({"model": "gpt-4o"}, 404, MODEL),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, 422, "role"),
    ({"messages": []}, 422, "messages"),
    ({"messages": [{"role": "user", "content": "order " * 3000}]}, 400, "context"),
    ({"messages": [{"role": "user", "content": "hi"}] * 1100}, 400, "messages cannot fit"),
])
@pytest.mark.parametrize("stream", [False, True])
def test_client_errors_get_a_client_status_before_any_stream(server, body, status, needle, stream):
    r = chat(server, stream=stream, **body)
    assert "text/event-stream" not in r.headers.get("content-type", "")  # refused before a 200 stream starts
    err = assert_client_error(r, status, needle)
    if status == 404:
        assert err["code"] == "model_not_found"


def test_bodies_that_are_not_json_or_too_big(server):
    r = server.post("/v1/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert_client_error(r, 400, "not valid JSON")
    r = server.post("/v1/chat/completions", content=b"[" * 200_000, headers={"Content-Type": "application/json"})
    assert_client_error(r, 400)
    big = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}] * 50_000}  # 50,000 messages
    t0 = time.perf_counter()
    r = server.post("/v1/chat/completions", json=big)
    assert_client_error(r, 413, "at most")
    print(f"50,000-message request refused in {time.perf_counter() - t0:.3f} s")  # not asserted: a figure
    alive(server)


def test_the_model_that_answered_is_named(server):
    r = chat(server, max_tokens=8, frobnicate=True)
    assert r.json()["model"] == MODEL
    assert r.headers["x-edge-slm-ignored-fields"] == "frobnicate"  # unknown fields are said, not silently dropped
    assert server.get("/v1/models").json()["data"][0]["id"] == MODEL
    assert_client_error(server.get("/v1/models/other"), 404)
    r = chat(server, max_tokens=8, stream=True)
    chunks = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
    assert chunks and all(c["model"] == MODEL for c in chunks)


# ------------------------------------------------------------------ streams and concurrency
def stream_answer(base: str, messages, max_tokens: int = 64) -> dict:
    text, calls, finish, done, errors = "", [], None, False, []
    with httpx.stream("POST", base + "/v1/chat/completions", timeout=120,
                      headers={"Authorization": f"Bearer {KEY}"},
                      json={"model": MODEL, "messages": messages, "temperature": 0, "max_tokens": max_tokens,
                            "stream": True, "tools": TOOLS}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: "):
                ch = json.loads(line[6:])
                if "error" in ch:
                    errors.append(ch["error"])
                    continue
                c = ch["choices"][0]
                text += c["delta"].get("content") or ""
                calls += [(t["function"]["name"], t["function"]["arguments"])
                          for t in c["delta"].get("tool_calls") or []]
                finish = c["finish_reason"] or finish
    return {"text": text, "calls": calls, "finish": finish, "done": done, "errors": errors}


def _tools():
    from helpers.domain.tools import openai_tools

    return openai_tools()


TOOLS = _tools()
QUESTIONS = ["where is order 48213?", "hello there", "what's the weather in Oslo?", "check stock of SKU-QX42"]


def test_concurrent_streams_equal_their_sequential_answers(server):
    base = str(server.base_url)
    msgs = [[{"role": "user", "content": q}] for q in QUESTIONS]
    sequential = [stream_answer(base, m) for m in msgs]
    assert all(s["finish"] in ("stop", "tool_calls", "length") and s["done"] for s in sequential)
    for _ in range(2):
        out: list = [None] * len(msgs)

        def one_stream(i: int, out: list = out) -> None:
            out[i] = stream_answer(base, msgs[i])

        threads = [threading.Thread(target=one_stream, args=(i,)) for i in range(len(msgs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=180)
        assert out == sequential  # none empty, none cut, none different
    # non-streaming requests at the same time give the same answers as well
    res: list = [None] * len(msgs)

    def one(i):
        r = server.post("/v1/chat/completions", json={"model": MODEL, "messages": msgs[i], "temperature": 0,
                                                      "max_tokens": 64, "tools": TOOLS})
        res[i] = r.json()["choices"][0]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(msgs))]
    [t.start() for t in threads]
    [t.join(timeout=180) for t in threads]
    for s, r in zip(sequential, res, strict=True):
        assert (r["message"]["content"] or "") == s["text"] and r["finish_reason"] == s["finish"]


def test_a_client_that_disconnects_frees_the_slot(server):
    base = str(server.base_url)
    expected = stream_answer(base, ASK)
    def disconnects() -> float:
        text = server.get("/metrics").text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("edge_slm_requests_total{") and 'outcome="client_disconnected"' in line)

    before = disconnects()
    for _ in range(3):  # a grammar that forbids ending early: 1,500 tokens unless the server stops it
        with httpx.stream("POST", base + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                          json={"model": MODEL, "messages": [{"role": "user", "content": "tell me a story"}],
                                "max_tokens": 1500, "stream": True, "grammar": "root ::= [a-z]{1500}"},
                          timeout=60) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            next(lines), next(lines)  # read the first events, then hang up
    assert stream_answer(base, ASK) == expected  # the next request is served normally
    deadline = time.time() + 10
    while disconnects() < before + 3 and time.time() < deadline:
        time.sleep(0.1)
    assert disconnects() == before + 3  # the server saw each hang-up and stopped that generation
    alive(server)


def test_usage_in_streams_when_asked_and_metrics(server):
    r = chat(server, stream=True, max_tokens=16, stream_options={"include_usage": True})
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
    usage = [e["usage"] for e in events if e.get("usage")]
    assert len(usage) == 1 and usage[0]["completion_tokens"] >= 1 and events[-1]["choices"] == []
    assert usage[0] == chat(server, max_tokens=16).json()["usage"]  # the same count as the unstreamed answer
    assert chat(server, max_tokens=0).status_code == 422
    text = server.get("/metrics").text
    for name in ("gen_ai_server_request_duration_seconds_count", "gen_ai_server_time_to_first_token_seconds_count",
                 "edge_slm_requests_total", "edge_slm_requests_waiting", "edge_slm_requests_running"):
        assert name in text
    assert 'outcome="422"' in text or 'outcome="400"' in text  # refused requests are counted too


def test_an_agent_told_of_a_context_overflow_by_the_server_does_not_retry(server):
    from helpers.agents.loop import Agent
    from helpers.agents.toolbox import ToolBox
    from helpers.runtimes.openai_compat import OpenAICompatRuntime

    rt = OpenAICompatRuntime(base_url=str(server.base_url) + "/v1", model=MODEL, api_key=KEY)
    history = [{"role": "user", "content": "order " * 600}, {"role": "assistant", "content": "ok"}] * 3
    agent = Agent(rt, ToolBox([]), messages=history, max_retries=2)
    for res in (agent.run("and now?"), list(agent.stream("and now?"))[-1].result):
        assert not res.ok and "no longer fits" in res.error and "rephrase" not in res.error
        assert res.n_model_calls == 1  # refused once, not re-sent larger
    assert agent.messages == history
    rt.close()


# ------------------------------------------------------------------ start-up faults
def test_a_truncated_or_fake_gguf_fails_fast_with_one_line(tmp_path, capsys):
    from helpers import cli

    cut = tmp_path / "cut.gguf"
    cut.write_bytes(GGUF.read_bytes()[: GGUF.stat().st_size // 2])
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a model" * 100)
    cases = ((cut, "truncated"), (fake, "not a GGUF"), (tmp_path, "folder"), (tmp_path / "no.gguf", "no GGUF"))
    for path, needle in cases:  # in-process: the check runs before anything starts (the CLI test runs a process)
        assert cli.main(["serve", "--model", str(path), "--port", str(free_port())]) == 2
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_a_port_in_use_is_said_plainly():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = subprocess.run([sys.executable, "-m", "helpers", "serve", "--port", str(s.getsockname()[1])],
                           cwd=str(ROOT), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "another program uses the port" in r.stderr and "Traceback" not in r.stderr


def test_the_llamacpp_runtime_ignores_an_unrelated_api_key_and_sends_the_workbook_key(monkeypatch):
    """An `API_KEY` in the shell made llama-cpp-python's server demand it, and the runtime timed out with an
    empty log. The workbook's server reads only EDGE_SLM_API_KEY, and the runtime sends that one."""
    from helpers.runtimes import get_runtime

    monkeypatch.setenv("API_KEY", "something-else-entirely")
    monkeypatch.setenv("EDGE_SLM_API_KEY", KEY)
    rt = get_runtime("llamacpp")
    try:
        res = rt.chat(ASK, TOOLS, max_tokens=96)
        assert res.answered_by == f"llamacpp/{MODEL}" and res.error is None
        assert httpx.get(rt.base_url + "/models", timeout=10).status_code == 401  # the key is required
        bad = httpx.get(rt.base_url + "/models", timeout=10,
                        headers={"Authorization": "Bearer something-else-entirely"})
        assert bad.status_code == 401  # and API_KEY's value is not it
    finally:
        rt.close()


# ------------------------------------------------------------------ in-process: loading, a stream failing midway
def _app(engine_state: str = "ready", stream_fails: bool = False):
    from helpers.runtimes.server import Engine, ServerConfig, create_app

    cfg = ServerConfig(model=GGUF)
    eng = Engine(cfg)
    app = create_app(cfg, eng)
    app.state.engine = eng
    if engine_state == "ready":
        eng.load()
    else:
        eng.state = engine_state
    if stream_fails:
        real = eng.start_stream

        def failing(p):  # the real generation, then a failure after the first chunks (a fault injected here)
            it = real(p)
            yield next(it)
            yield next(it)
            raise MemoryError("injected: llama.cpp ran out of memory")

        eng.start_stream = failing
    return app


def test_health_is_503_while_loading_and_chat_says_so():
    from fastapi.testclient import TestClient

    client = TestClient(_app("loading"), base_url="http://127.0.0.1:8765")
    assert client.get("/health").status_code == 503
    r = client.post("/v1/chat/completions", json={"model": MODEL, "messages": ASK})
    assert r.status_code == 503 and r.headers["retry-after"] and "loading" in r.json()["error"]["message"]


def test_a_full_queue_gets_503_with_retry_after():
    from fastapi.testclient import TestClient

    app = _app()
    app.state.engine.waiting = app.state.engine.cfg.max_queue  # as if that many requests were waiting
    r = TestClient(app, base_url="http://127.0.0.1:8765").post(
        "/v1/chat/completions", json={"model": MODEL, "messages": ASK})
    assert r.status_code == 503 and r.headers["retry-after"] and "busy" in r.json()["error"]["message"]


def test_a_stream_that_fails_midway_ends_with_an_error_event():
    from fastapi.testclient import TestClient

    client = TestClient(_app(stream_fails=True), base_url="http://127.0.0.1:8765")
    r = client.post("/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "hello"}],
                                                  "stream": True, "max_tokens": 64})
    assert r.status_code == 200
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] != "[DONE]"
    last = json.loads(events[-1])
    assert last["error"]["code"] == "stream_failed" and "incomplete" in last["error"]["message"]
    # the openai client turns that event into an exception, and the workbook's runtime into an error result
    from helpers.runtimes.openai_compat import result_from_chunks

    res = result_from_chunks([json.loads(e) for e in events[:-1]], "llamacpp", MODEL, None)
    assert res.error["type"] == "stream_incomplete"
    ok = client.post("/v1/chat/completions", json={"model": MODEL, "messages": ASK, "max_tokens": 8})
    assert ok.status_code == 200  # the slot was released




def test_cors_only_for_the_origin_asked_for_and_never_with_credentials():
    from fastapi.testclient import TestClient

    from helpers.runtimes.server import Engine, ServerConfig, create_app

    cfg = ServerConfig(model=GGUF, cors_origins=("http://localhost:8888",))
    eng = Engine(cfg)
    app = create_app(cfg, eng)
    app.state.engine = eng
    eng.load()
    client = TestClient(app, base_url="http://127.0.0.1:8765")
    pre = client.options("/v1/chat/completions", headers={"Origin": "http://localhost:8888",
                                                          "Access-Control-Request-Method": "POST"})
    assert pre.headers["access-control-allow-origin"] == "http://localhost:8888"
    assert "access-control-allow-credentials" not in pre.headers
    ok = client.post("/v1/chat/completions", headers={"Origin": "http://localhost:8888"},
                     json={"model": MODEL, "messages": ASK, "max_tokens": 8})
    assert ok.status_code == 200
    other = client.post("/v1/chat/completions", headers={"Origin": "http://evil.example"},
                        json={"model": MODEL, "messages": ASK, "max_tokens": 8})
    assert other.status_code == 403


def test_the_api_key_file(tmp_path, monkeypatch):
    from helpers.runtimes.server import read_api_key

    monkeypatch.delenv("EDGE_SLM_API_KEY", raising=False)
    assert read_api_key(None) is None
    good = tmp_path / "key.txt"
    good.write_text("  s3cret-key-for-tests \nsecond line ignored\n")
    assert read_api_key(good) == "s3cret-key-for-tests"
    short = tmp_path / "short.txt"
    short.write_text("abc")
    with pytest.raises(ValueError, match="shorter than 8"):
        read_api_key(short)
    with pytest.raises(ValueError, match="cannot read the API key file"):
        read_api_key(tmp_path / "absent.txt")
    monkeypatch.setenv("EDGE_SLM_API_KEY", "from-the-environment")
    assert read_api_key(None) == "from-the-environment"
