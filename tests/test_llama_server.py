"""llama.cpp's own server (`llamaserver` runtime, notebook 11): the build helper, faults and concurrency.

Tests that need the built binaries skip with a message when they are absent; CI builds them first with
`python -m helpers build-llama-server`.
"""

from __future__ import annotations

import json
import os
import socket
import stat

import pytest

from helpers.runtimes import RuntimeUnavailable
from helpers.runtimes.llama_build import LlamaBuildError, build_llama_server, find_binaries, missing_build_tools
from helpers.runtimes.llama_server import LlamaServerRuntime, http_status, parse_metrics
from helpers.runtimes.probe import Answer, classify, concurrency_probe

PROMPTS = ["hello, who are you?", "what can you do for me?", "thanks, that is all"]

needs_binaries = pytest.mark.skipif(find_binaries() is None, reason="llama-server is not built: run "
                                    "`python -m helpers build-llama-server` (CI does it before the tests)")


# --- the build helper -----------------------------------------------------------------------------------
def test_build_without_a_compiler_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGEAI_LLAMA_CPP_CACHE", str(tmp_path / "cache"))  # nothing cached there
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no cmake, ninja or compiler on PATH
    assert set(missing_build_tools()) == {"cmake", "ninja", "a C++ compiler (g++ or clang++)"}
    with pytest.raises(LlamaBuildError) as info:
        build_llama_server()
    msg = str(info.value)
    assert "cmake" in msg and "ninja" in msg and "C++ compiler" in msg and "apt-get install" in msg
    assert "build-llama-server" in msg
    from helpers.cli import main

    assert main(["build-llama-server"]) == 2  # the command: one clear line, no traceback
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot build llama.cpp's server") and "Traceback" not in err


def test_cached_binaries_make_the_build_a_no_op(tmp_path, monkeypatch):
    from helpers.runtimes.llama_build import bin_dir

    monkeypatch.setenv("EDGEAI_LLAMA_CPP_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # would fail if it tried to build
    d = bin_dir()
    assert d == tmp_path / d.parent.name / "bin"  # keyed by the llama-cpp-python version
    d.mkdir(parents=True)
    for tool in ("llama-server", "llama-bench"):
        (d / tool).write_text("#!/bin/sh\n")
        (d / tool).chmod((d / tool).stat().st_mode | stat.S_IXUSR)
    b = build_llama_server()
    assert b.cached and b.server == d / "llama-server" and b.build_seconds == 0.0


def test_probe_classifies_lost_cut_and_different_answers():
    ref = Answer(text="Hello! How can I help?", finish_reason="stop")
    assert classify(Answer(text="Hello! How can I help?", finish_reason="stop"), ref) == "identical"
    assert classify(Answer(text="", finish_reason=None), ref) == "lost"
    assert classify(Answer(text="Hello! How", finish_reason=None), ref) == "cut"
    assert classify(Answer(text="Hello! How can I help?", finish_reason=None), ref) == "cut"  # no finish reason
    assert classify(Answer(text="Goodbye", finish_reason="stop"), ref) == "different"
    assert classify(Answer(error="HTTP 500"), ref) == "error"
    with pytest.raises(ValueError):
        concurrency_probe("http://127.0.0.1:9/v1", "m", [], concurrency=2)


def test_without_binaries_the_runtime_says_how_to_build(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEAI_LLAMA_CPP_CACHE", str(tmp_path))
    with pytest.raises(RuntimeUnavailable, match="build-llama-server"):
        LlamaServerRuntime()


# --- the live server ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server():
    rt = LlamaServerRuntime(parallel=2, ctx_per_slot=512)
    yield rt
    rt.close()


@needs_binaries
def test_missing_gguf_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeUnavailable, match="no model file"):
        LlamaServerRuntime(model_path=tmp_path / "nope.gguf")
    from helpers.runtimes import get_runtime

    with pytest.raises(RuntimeUnavailable, match="no model file"):  # an unknown model name is no file either
        get_runtime("llamaserver", model="no-such-model.gguf")


@needs_binaries
def test_corrupt_gguf_fails_fast_with_the_reason(tmp_path):
    bad = tmp_path / "corrupt.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(4096))
    with pytest.raises(RuntimeUnavailable) as info:
        LlamaServerRuntime(model_path=bad, startup_timeout=30)
    msg = str(info.value)
    assert "exited at start-up" in msg and "log" in msg


@needs_binaries
def test_port_in_use_is_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(RuntimeUnavailable, match=f"port {port} .* already in use"):
            LlamaServerRuntime(port=port)


@needs_binaries
def test_health_metrics_and_which_model_answered(server):
    assert http_status(server.root + "/health")[0] == 200 and server.health_log[-1][1] == 200
    res = server.chat([{"role": "user", "content": PROMPTS[0]}], max_tokens=16)
    assert res.error is None and res.content and res.answered_by == f"llamaserver/{server.model_path.stem}"
    m = parse_metrics(server.metrics_text())
    assert m["llamacpp:tokens_predicted_total"] >= res.completion_tokens > 0


@needs_binaries
def test_body_that_is_not_json_is_refused_and_the_server_carries_on(server):
    status, body = http_status(server.base_url + "/chat/completions", method="POST", body=b"{not json")
    # this llama.cpp answers 500 (its JSON parser's exception is not classed as a bad request), with the reason
    assert status in (400, 500), (status, body)
    assert "parse error" in json.loads(body)["error"]["message"]
    assert server.chat([{"role": "user", "content": PROMPTS[1]}], max_tokens=8).content


@needs_binaries
def test_unknown_model_name_in_a_request(server):
    """llama-server serves one model: what it does with another name is pinned here (notebook 11 shows it)."""
    body = json.dumps({"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}],
                       "max_tokens": 4}).encode()
    status, text = http_status(server.base_url + "/chat/completions", method="POST", body=body)
    assert status == 200, text  # it answers with the one model it has loaded ...
    assert json.loads(text)["model"] == server.model_path.stem  # ... and the response says which


@needs_binaries
def test_oversize_input_is_an_error_result_not_an_exception(server):
    res = server.chat([{"role": "user", "content": "order 48213 " * 800}], max_tokens=8)
    assert res.finish_reason == "error" and "HTTP 400" in res.error["message"]
    assert "context" in res.error["message"].lower()
    assert server.chat([{"role": "user", "content": PROMPTS[2]}], max_tokens=8).content  # still serving


@needs_binaries
def test_a_client_that_disconnects_mid_stream_does_not_harm_the_next_request(server):
    import httpx

    ref = server.chat([{"role": "user", "content": PROMPTS[0]}], max_tokens=32)
    body = {"model": server.model, "messages": [{"role": "user", "content": PROMPTS[1]}], "max_tokens": 200,
            "stream": True, "temperature": 0.0}
    with httpx.Client(timeout=30) as c, c.stream("POST", server.base_url + "/chat/completions", json=body) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                break  # one event, then hang up
    again = server.chat([{"role": "user", "content": PROMPTS[0]}], max_tokens=32)
    assert again.error is None and again.content == ref.content


@needs_binaries
@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "non-streaming"])
def test_concurrent_answers_are_identical_to_sequential(server, stream):
    rep = concurrency_probe(server.base_url, server.model, PROMPTS, concurrency=3, rounds=1, stream=stream,
                            max_tokens=32, server="llama-server")
    assert rep.total == 3 and rep.bad == 0, rep.rows


@needs_binaries
def test_api_key_guards_chat_but_not_health(tmp_path):
    with LlamaServerRuntime(api_key="sekret-123", parallel=1, ctx_per_slot=256) as rt:
        url = rt.base_url + "/chat/completions"
        body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}).encode()
        assert http_status(url, method="POST", body=body)[0] == 401
        assert http_status(url, method="POST", body=body, api_key="wrong")[0] == 401
        assert http_status(url, method="POST", body=body, api_key="sekret-123")[0] == 200
        assert http_status(rt.root + "/health")[0] == 200
        assert rt.chat([{"role": "user", "content": "hi"}], max_tokens=4).error is None  # the runtime sends it


@needs_binaries
def test_tools_are_either_tool_calls_or_said_to_be_not_offered(server, tools):
    res = server.chat([{"role": "user", "content": "where is my order 48213?"}], tools, max_tokens=64)
    if server.tool_call_support():
        assert res.tool_calls and res.error is None
    else:
        assert not res.tool_calls and res.error["type"] == "tools_not_offered"
        assert "not offered on this runtime" in res.error["message"]


# --- lab 11's checks fail on wrong answers, with a hint ---------------------------------------------------
def test_lab11_throughput_check_catches_wrong_answers():
    from helpers.labs.lab11 import check_throughput

    def right(text):
        m = parse_metrics(text)

        def rate(a, b):
            return m[a] / m[b] if m[b] else 0.0

        return {"prompt_tps": rate("llamacpp:prompt_tokens_total", "llamacpp:prompt_seconds_total"),
                "gen_tps": rate("llamacpp:tokens_predicted_total", "llamacpp:tokens_predicted_seconds_total"),
                "requests_processing": m["llamacpp:requests_processing"]}

    check_throughput(right)

    def swapped(text):
        return {**right(text), "gen_tps": right(text)["prompt_tps"]}

    with pytest.raises(AssertionError, match="gen_tps .* tokens/s is the tokens counter divided by"):
        check_throughput(swapped)

    def unguarded(text):
        m = parse_metrics(text)
        gen = m["llamacpp:tokens_predicted_total"] / m["llamacpp:tokens_predicted_seconds_total"]
        return {**right(text), "gen_tps": gen}

    with pytest.raises((AssertionError, ZeroDivisionError)):
        check_throughput(unguarded)


def test_lab11_outcome_check_catches_wrong_answers():
    from helpers.labs.lab11 import check_outcomes

    def right(got, refs):
        counts = {}
        for g, r in zip(got, refs):
            counts[classify(g, r)] = counts.get(classify(g, r), 0) + 1
        return counts

    check_outcomes(right)

    def text_only(got, refs):  # ignores the finish reason: a full text without it is not identical
        return right([Answer(text=g.text, finish_reason=r.finish_reason, error=g.error) for g, r in zip(got, refs)],
                     refs)

    with pytest.raises(AssertionError, match=r"expected .* the full text without its finish reason\) is cut"):
        check_outcomes(text_only)


def test_lab11_health_check_catches_a_poller_that_never_gives_up():
    from helpers.labs.lab11 import check_wait_healthy

    def returns_at_once(root, timeout_s):
        return [200]

    with pytest.raises(AssertionError, match="must raise TimeoutError"):
        check_wait_healthy(returns_at_once, LlamaServerRuntime)


@needs_binaries
def test_the_server_does_not_outlive_a_killed_parent(tmp_path):
    """A kernel killed with SIGKILL runs no cleanup: the server must still stop (Linux: PR_SET_PDEATHSIG)."""
    import signal
    import subprocess
    import sys
    import time

    code = ("from helpers.runtimes.llama_server import LlamaServerRuntime; import sys, time; "
            "rt = LlamaServerRuntime(parallel=1, ctx_per_slot=256); print(rt.proc.pid, flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    server_pid = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(100):
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(server_pid, signal.SIGTERM)
    raise AssertionError("llama-server kept running after the process that started it was killed")
