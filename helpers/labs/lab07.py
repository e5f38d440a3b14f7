"""Auto-checks for lab 07 (Microsoft Agent Framework on the local server): they inspect a real run.

Introduced in lab 07. Every check raises AssertionError with a hint, or prints `PASS: ...`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers.runtimes.wire import arguments_dict


def _ok(msg: str) -> None:
    print(f"PASS: {msg}")


def _calls_and_results(response: Any) -> list[tuple[str, dict[str, Any], Any]]:
    """(name, arguments, result) of each function call in a framework response, matched by call id."""
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    out = []
    for m in response.messages:
        for c in m.contents:
            if c.type == "function_call":
                calls[c.call_id] = (c.name, dict(arguments_dict(c.arguments)))
            elif c.type == "function_result" and c.call_id in calls:
                out.append((*calls[c.call_id], c.result))
    return out


def check_maf_agent(agent: Any, response: Any, shop_path: str | Path) -> None:
    """Lab 07, task 1: a framework Agent ran a domain tool for real, and the result came from the shop."""
    from agent_framework import Agent

    from helpers.domain.tools import TOOL_NAMES, Shop

    assert isinstance(agent, Agent), "build an agent_framework.Agent(client=..., tools=[...])"
    assert response is not None and hasattr(response, "messages"), "save `response = await agent.run(...)`"
    done = _calls_and_results(response)
    assert done, ("the model called no tool: offer all ten domain tools (shop_functions(shop_path)), the "
                  "workbook's model knows only those, and ask about an order by its number")
    shop = Shop(shop_path)
    try:
        for name, args, result in done:
            assert name in TOOL_NAMES, f"{name} is not a domain tool"
            if name in ("lookup_order", "lookup_customer", "check_inventory", "run_diagnostics"):
                want = getattr(shop, name)(**args)
                got = json.loads(result) if isinstance(result, str) else result
                assert got == want, f"{name}({args}) returned {got}, the shop holds {want}"
    finally:
        shop.close()
    text = (response.text or "").strip()
    assert text, "the agent ran the tool but gave no final answer: let agent.run finish (it sends the result back)"
    assert "<tool_call>" not in text, (f"the final answer is raw tool-call markup, not an answer: {text[:80]!r}; the "
                                       "server should parse calls (llama-server --jinja, or the workbook's server)")
    print("answer:", response.text)
    _ok(f"{len(done)} tool call(s) ran against the shop: {[(n, a) for n, a, _ in done]}")


def check_maf_workflow(result: Any, spans: Any, agent_names: tuple[str, str]) -> None:
    """Lab 07, task 2: a workflow ran two agents (seen in its events and in the telemetry spans)."""
    assert hasattr(result, "get_outputs"), "save `result = await workflow.run(...)`"
    invoked = [ev.executor_id for ev in result if ev.type == "executor_invoked"]
    for name in agent_names:
        assert name in invoked, (f"agent {name!r} never ran (invoked: {invoked}): connect it with add_edge, "
                                 "and make the bridge send it an AgentExecutorRequest")
    assert result.get_outputs(), "the workflow produced no output"
    names = [s.name for s in spans.get_finished_spans()]
    for name in agent_names:
        assert f"invoke_agent {name}" in names, (f"no telemetry span for agent {name}: call in_memory_telemetry() "
                                                 "before running")
    _ok(f"the workflow ran {invoked}; telemetry recorded both agents")
