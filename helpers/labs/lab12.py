"""Auto-checks for lab 12 (Foundry Local in-process): they inspect the learner's real SDK objects and results.

Introduced in lab 12. Every check raises AssertionError with a hint, or prints `PASS: ...`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse


def _ok(msg: str) -> None:
    print(f"PASS: {msg}")


def check_registration(model: Any, folder: str | Path, model_id: str) -> None:
    """Lab 12, task 1: the folder is registered under `model_id` as a chat model with tool calling, and loaded."""
    assert model is not None, "save the model that local.register_model(...) returns in `model`"
    assert re.fullmatch(r"[A-Za-z0-9._-]+:\d+", model_id or ""), (
        f"model id {model_id!r}: Foundry Local wants <name>:<version>, e.g. 'my-edge-slm:1'")
    assert model.id == model_id, f"the model's id is {model.id!r}, expected {model_id!r}: register it under that id"
    assert Path(model.get_path()).resolve() == Path(folder).resolve(), (
        f"the model points at {model.get_path()}, not at {folder}: pass the int4 folder as model_path")
    assert model.info.task == "chat-completion", (
        f"task is {model.info.task!r}: set_string_property('task', 'chat-completion') on the metadata, or "
        "ChatSession refuses the model")
    assert model.supports_tool_calling, ("tool calling is off: set_int_property('supports_tool_calling', 1) and "
                                         "the tool_call_start/tool_call_end markers")
    assert model.is_loaded, "the model is registered but not loaded: call model.load()"
    _ok(f"{model.id} registered from {Path(folder).name} as a chat model with tool calling, and loaded")


def check_tool_round_trip(call: Any, result: Any, answer: str, shop_path: str | Path) -> None:
    """Lab 12, task 2: the model called a domain tool, the tool ran on the shop, and the model answered from it."""
    from helpers.domain.tools import TOOL_NAMES, Shop

    assert call is not None and hasattr(call, "call_id"), (
        "save the ToolCallItem the session returned in `call` (the model called no tool? offer the ten domain "
        "tools with add_tool_definition and ask about an order by its number)")
    assert call.name in TOOL_NAMES, f"{call.name!r} is not a domain tool; offered tools are {list(TOOL_NAMES)}"
    try:
        args = json.loads(call.arguments)
    except (TypeError, ValueError):
        raise AssertionError(f"call.arguments is not JSON: {call.arguments!r}") from None
    shop = Shop(shop_path)
    try:
        want = getattr(shop, call.name)(**args)
    finally:
        shop.close()
    got = json.loads(result) if isinstance(result, str) else result
    assert got == want, (f"`result` is {got!r} but {call.name}({args}) on the shop returns {want!r}: run the tool "
                         "the model asked for, with its arguments")
    assert isinstance(answer, str) and answer.strip(), (
        "`answer` is empty: send ToolResultItem(call_id=call.call_id, result=json.dumps(result)) in a new Request "
        "on the SAME session and keep the text of its MessageItem")
    assert "<tool_call>" not in answer, f"`answer` is markup, not an answer: {answer!r}"
    values = [str(v).casefold() for v in (want.values() if isinstance(want, dict) else [want])]
    assert any(v and v in answer.casefold() for v in values), (
        f"the answer {answer!r} uses nothing of the tool result {want!r}: did the session get the ToolResultItem "
        "with the call's own call_id?")
    status = want.get("status") if isinstance(want, dict) else None
    assert not status or str(status).casefold() in answer.casefold(), (
        f"the answer {answer!r} does not give the status the tool returned ({status!r}): send the result as "
        "compact JSON, json.dumps(result, separators=(',', ':')), the form the model was trained on")
    _ok(f"{call.name}({args}) ran on the shop and the model answered from it: {answer!r}")


def check_streaming(pieces: list[str], whole: str) -> None:
    """Lab 12, task 3: the reply came in several streamed pieces that add up to the non-streamed reply."""
    assert isinstance(pieces, list) and pieces, (
        "`pieces` is empty: set_streaming(True), then keep item.text of each item of process_streaming_request")
    assert all(isinstance(p, str) for p in pieces), "keep the text of each streamed item (item.text), not the items"
    assert len(pieces) > 1, ("one piece is not a stream: collect the items as they come, not the joined text "
                             "or the final response")
    joined = "".join(pieces)
    assert joined == whole, (f"the pieces join to {joined[:60]!r}... but the non-streamed reply is {whole[:60]!r}...: "
                             "use the same options (temperature 0, same max tokens) and the same message")
    _ok(f"{len(pieces)} pieces, joined equal to the non-streamed reply")


def check_framework_agent(agent: Any, response: Any, shop_path: str | Path) -> None:
    """Lab 12, task 4: a framework Agent on the `foundry` runtime ran a domain tool on the shop and answered."""
    from agent_framework import Agent

    from helpers.domain.tools import TOOL_NAMES, Shop

    assert isinstance(agent, Agent), "build an agent_framework.Agent(client=runtime_chat_client(foundry), tools=...)"
    runtime = getattr(agent.client, "runtime", None)
    assert getattr(runtime, "name", None) == "foundry", (
        f"the agent's client runs on {getattr(runtime, 'name', type(agent.client).__name__)!r}: use "
        "runtime_chat_client(get_runtime('foundry'))")
    assert response is not None and hasattr(response, "messages"), "save `response = await agent.run(question)`"
    calls = {c.call_id: c for m in response.messages for c in m.contents if c.type == "function_call"}
    results = [c for m in response.messages for c in m.contents if c.type == "function_result"]
    assert calls and results, ("the agent ran no tool: pass tools=shop_functions(shop.path) and ask about an "
                               "order by its number")
    shop = Shop(shop_path)
    try:
        for r in results:
            call = calls[r.call_id]
            args = call.arguments if isinstance(call.arguments, dict) else json.loads(call.arguments or "{}")
            assert call.name in TOOL_NAMES, f"{call.name} is not a domain tool"
            want = getattr(shop, call.name)(**args)
            got = json.loads(r.result) if isinstance(r.result, str) else r.result
            assert got == want, f"{call.name}({args}) returned {got}, the shop holds {want}"
    finally:
        shop.close()
    assert (response.text or "").strip(), "the agent gave no final answer after the tool ran"
    _ok(f"the agent ran {[c.name for c in calls.values()]} on the shop through Foundry Local and answered")


def check_web_service(url: str, chat_status: int, health_status: int, manager: Any) -> None:
    """Lab 12, task 4: the web service ran on loopback, answered 404 for our model and for /health, and is
    stopped."""
    host = urlparse(url or "").hostname
    assert host == "127.0.0.1", f"the service listened on {url!r}: bind it to http://127.0.0.1:0 (loopback)"
    assert chat_status == 404, (f"the chat request answered {chat_status}, not 404: send model=<your model id> to "
                                "/v1/chat/completions while the service runs (offline it cannot find a registered "
                                "model)")
    assert health_status == 404, (f"GET /health answered {health_status}: save the status code of "
                                  "http.get('/health') while the service runs (it has no such route)")
    assert manager.urls is None, "the web service is still running: call mgr.stop_web_service()"
    _ok("served on loopback; 404 for the registered model and for /health; stopped")


__all__ = ["check_framework_agent", "check_registration", "check_streaming", "check_tool_round_trip",
           "check_web_service"]
