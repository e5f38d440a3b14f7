"""Fault suite of the agent loop (issue 15): every fault ends with ok=False and a clear error, never an exception.

`Scripted` is a TEST DOUBLE that replays scripted model replies so each fault is hit exactly; the tests
through a server use the workbook's real server (tests/test_faults_server.py starts it the same way) or, for
a stream cut by the network, a loopback stub that speaks the OpenAI streaming format and stops early.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from typing import Any

import pytest

from helpers.agents.loop import Agent, ToolTimeout, call_with_timeout, copied_error_text
from helpers.agents.toolbox import ToolBox
from helpers.runtimes.base import ChatResult, Runtime, ToolCall


class Scripted(Runtime):
    """Test double: replays ChatResults (or raises exceptions) and records what it was sent."""

    name = "scripted"

    def __init__(self, replies: list[Any]) -> None:
        self.replies, self.requests = list(replies), []

    @property
    def model(self) -> str:
        return "script"

    def availability(self):  # pragma: no cover - not used
        raise NotImplementedError

    def chat(self, messages, tools=None, **kw) -> ChatResult:
        self.requests.append([dict(m) for m in messages])
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply


def calls(name: str, **args: Any) -> ChatResult:
    return ChatResult("scripted", "script", tool_calls=[ToolCall("c1", name, args)], finish_reason="tool_calls")


def text(content: str, finish: str = "stop") -> ChatResult:
    return ChatResult("scripted", "script", content=content, finish_reason=finish)


def box_of(fn) -> ToolBox:
    return ToolBox.from_functions([fn])


class Circular:
    pass


def circular(n: int) -> dict:
    """Returns a dict that contains itself."""
    d: dict[str, Any] = {"n": n}
    d["self"] = d
    return d


class BadStr:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def bad_str(n: int) -> Any:
    """Returns an object whose str() raises."""
    return BadStr()


def explode(n: int) -> dict:
    """Always raises."""
    raise ConnectionError("warehouse service unreachable")


def hang(n: int) -> dict:
    """Never returns in time."""
    time.sleep(30)
    return {"n": n}


@pytest.mark.parametrize("tool", [circular, bad_str, explode])
def test_a_tool_fault_never_raises_and_ends_with_ok_false(tool):
    rt = Scripted([calls(tool.__name__, n=1), text("All good, done!")])
    agent = Agent(rt, box_of(tool))
    res = agent.run("go")  # must not raise
    assert res.ok is False and "tool" in res.error.lower() and "fallback" in res.error
    assert res.answer == "All good, done!"  # what the model said is kept, but not called a success
    step = next(s for s in res.steps if s.kind == "tool")
    assert step.detail["error_type"] in ("tool_failed", "bad_result") and not step.detail["ran"]
    assert agent.messages == []  # a failed turn leaves the conversation unchanged
    fed = json.loads(rt.requests[1][-1]["content"])  # the model got valid JSON text about the failure
    assert set(fed) == {"error"}


def test_a_tool_that_hangs_times_out():
    rt = Scripted([calls("hang", n=1), text("Sorry.")])
    t0 = time.perf_counter()
    res = Agent(rt, box_of(hang), tool_timeout=0.3).run("go")
    assert time.perf_counter() - t0 < 5
    assert not res.ok and "timed out" in res.error
    assert next(s for s in res.steps if s.kind == "tool").detail["error_type"] == "tool_timeout"


def test_call_with_timeout_outside_the_main_thread_runs_without_a_limit():
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("v", call_with_timeout(lambda: 7, 0.1)))
    th.start()
    th.join()
    assert out["v"] == 7
    with pytest.raises(ToolTimeout):
        call_with_timeout(lambda: time.sleep(2), 0.1)


def test_error_text_fed_back_never_becomes_a_tool_argument():
    filed = []

    def create_ticket(description: str) -> dict:
        """File a ticket."""
        filed.append(description)
        return {"ticket_id": "T-1"}

    box = ToolBox.from_functions([explode, create_ticket])
    rt = Scripted([calls("explode", n=1),
                   calls("create_ticket", description="tool explode failed: ConnectionError: warehouse service "
                                                       "unreachable"),
                   text("I could not reach the warehouse.")])
    res = Agent(rt, box, max_retries=1).run("check the warehouse")
    assert filed == []  # the copied error text was refused, never run
    refused = [s for s in res.steps if s.kind == "error" and s.detail.get("type") == "copied_error_text"]
    assert refused and not res.ok
    assert copied_error_text({"city": "Oslo"}, ["tool x failed: Oslo is closed"]) is None  # short values pass


def test_empty_and_cut_answers_are_not_success():
    res = Agent(Scripted([text("   ")]), ToolBox([])).run("hi")
    assert not res.ok and "empty" in res.error
    res = Agent(Scripted([text("The order is on its way and will arri", finish="length")]), ToolBox([]),
                max_tokens=16).run("hi")
    assert not res.ok and "cut" in res.error and "max_tokens" in res.error
    cut = ChatResult("scripted", "script", content="partial", finish_reason="error",
                     error={"type": "stream_incomplete", "message": "the stream ended without a finish reason"})
    rt = Scripted([cut])
    res = Agent(rt, ToolBox([]), max_retries=3).run("hi")
    assert not res.ok and "stream_incomplete" in res.error and len(rt.requests) == 1  # not retried


def test_context_overflow_from_a_server_is_not_retried_as_a_bad_call():
    over = ChatResult("llamacpp", "edge-slm-f16", finish_reason="error",
                      error={"type": "context_overflow", "message": "HTTP 400: over the model's 2048-token context"})
    rt = Scripted([over, text("unused")])
    res = Agent(rt, ToolBox([]), max_retries=2).run("hi")
    assert not res.ok and len(rt.requests) == 1
    assert "no longer fits" in res.error and "rephrase" not in res.error and "reset" in res.error


def test_an_unexpected_fault_inside_the_loop_is_still_a_result():
    class Guard:
        def check_input(self, text):
            raise KeyError("guard misconfigured")

    res = Agent(Scripted([]), ToolBox([]), guard=Guard()).run("hi")
    assert not res.ok and "KeyError" in res.error and "unchanged" in res.error


# ------------------------------------------------------------------ a stream cut by the network (stub server)
class _CutStream(http.server.BaseHTTPRequestHandler):
    """Loopback stub: answers /v1/chat/completions with two OpenAI stream chunks, then closes the connection
    without a finish reason or [DONE] (what a proxy timeout or a crashed server looks like to a client)."""

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        for piece in ("Your order ", "is"):
            chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "stub",
                     "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            self.wfile.flush()
        self.close_connection = True

    def log_message(self, *a):
        pass


def test_agent_stream_through_a_cut_stream_is_not_ok():
    from helpers.runtimes.openai_compat import OpenAICompatRuntime

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CutStream)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        rt = OpenAICompatRuntime(base_url=f"http://127.0.0.1:{srv.server_port}/v1", model="stub")
        events = list(Agent(rt, ToolBox([])).stream("where is my order?"))
        res = events[-1].result
        assert events[-1].kind == "result" and not res.ok
        assert "stream_incomplete" in res.error
        rt.close()
    finally:
        srv.shutdown()
        srv.server_close()


class _ErrorMidway(_CutStream):
    """Loopback stub: two chunks, then the explicit error event the workbook's server sends when generation
    fails after the 200 (the same shape as OpenAI's in-stream errors)."""

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "stub",
                 "choices": [{"index": 0, "delta": {"content": "Your order"}, "finish_reason": None}]}
        self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        err = {"error": {"message": "generation failed midway (MemoryError)", "type": "server_error",
                         "code": "stream_failed"}}
        self.wfile.write(b"data: " + json.dumps(err).encode() + b"\n\n")
        self.wfile.flush()
        self.close_connection = True


def test_agent_stream_through_a_stream_that_reports_an_error_is_not_ok():
    from helpers.runtimes.openai_compat import OpenAICompatRuntime

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ErrorMidway)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        rt = OpenAICompatRuntime(base_url=f"http://127.0.0.1:{srv.server_port}/v1", model="stub")
        events = list(Agent(rt, ToolBox([])).stream("where is my order?"))
        res = events[-1].result
        assert not res.ok and "stream_failed" in res.error and "midway" in res.error
        assert [e.text for e in events if e.kind == "delta"] == ["Your order"]  # what came is shown, not kept
        rt.close()
    finally:
        srv.shutdown()
        srv.server_close()
