"""Plumbing for Microsoft Agent Framework (packages `agent-framework-core` and `agent-framework-openai`) on
the workbook's local OpenAI-compatible server (notebook 07).

- `chat_client(runtime)`: an `OpenAIChatCompletionClient` for a runtime that has a `base_url` (the
  llama.cpp server of `get_runtime("llamacpp")`). The Chat Completions API, because llama.cpp's server
  has no Responses API (which `OpenAIChatClient` speaks).
- `runtime_chat_client(runtime)`: an Agent Framework chat client over any workbook runtime, in-process
  (notebook 12 runs it on Foundry Local's `ChatSession`); see `helpers/agents/maf_runtime.py`.
- `shop_functions(path)`: the ten domain tools as plain functions the framework can run in its worker
  threads (a SQLite connection may not cross threads, so each call opens the shop itself).
- `guard_middleware(guard, audit)`: the guardrails of notebook 06 as a framework function middleware.
- `in_memory_telemetry()`: OpenTelemetry spans kept in memory (no exporter, no network).

The framework is imported inside the functions, so `import helpers.agents.maf` stays light.
"""

from __future__ import annotations

import functools
import inspect
import json
from pathlib import Path
from typing import Any, Callable, get_type_hints

from helpers.domain.tools import TOOL_NAMES, Shop

_TELEMETRY: Any = None


def chat_client(runtime: Any, api_key: str | None = None) -> Any:
    """An `OpenAIChatCompletionClient` for `runtime`'s OpenAI-compatible URL (notebook 07); the key is the
    runtime's own (EDGE_SLM_API_KEY for the workbook's server) unless given. Its chat middleware
    `reply_check()` keeps the model's raw tool-call markup out of the framework's answers."""
    api_key = api_key or getattr(runtime, "api_key", None) or "local"
    base_url = getattr(runtime, "base_url", None)
    if not base_url:
        raise ValueError(f"{runtime!r} has no base_url: use a server runtime, e.g. get_runtime('llamacpp').")
    from agent_framework.openai import OpenAIChatCompletionClient

    return OpenAIChatCompletionClient(model=runtime.model, api_key=api_key, base_url=base_url,
                                      middleware=[reply_check()])


def unusable_reply(text: str) -> str | None:
    """Why a model's text cannot be an answer (chat markup in it: a tool call that did not parse, a next turn
    begun), or None. An OpenAI-compatible server passes a call it could not parse on as text (the workbook's
    server, llama-server and vLLM alike), and the framework would show it to the user as the answer."""
    from helpers.domain.chat_format import MARKERS, markup_in, parse_reply

    marker = markup_in(text or "")
    if marker is None:
        return None
    err = parse_reply(text).error
    why = f"{err['type']}: {err['message']}" if err else f"the chat marker {marker} in its text"
    for m in MARKERS:  # name the markers without writing them: this text is shown as the answer
        why = why.replace(m, m.strip("<>/|"))
    return (f"no answer: the model wrote a tool call or chat markup the server could not turn into a call ({why}); "
            "nothing ran. Ask again, more simply, or with the exact id.")


def reply_check() -> Callable[..., Any]:
    """A framework chat middleware: a model reply whose text holds chat markup (`unusable_reply`) becomes a
    clear error text in its place, never the answer. Non-streamed replies only (the framework's `run`)."""
    from agent_framework import Content, chat_middleware

    @chat_middleware
    async def checked_reply(context: Any, call_next: Callable[[], Any]) -> None:
        await call_next()
        result = context.result
        if context.stream or result is None or not hasattr(result, "messages"):
            return
        for m in result.messages:
            for i, c in enumerate(list(m.contents)):
                if c.type == "text" and (why := unusable_reply(c.text or "")):
                    m.contents[i] = Content.from_text(why)

    return checked_reply


def runtime_chat_client(runtime: Any, **kwargs: Any) -> Any:
    """A framework chat client whose model is a workbook runtime, called in-process (notebook 12)."""
    from helpers.agents.maf_runtime import RuntimeChatClient

    return RuntimeChatClient(runtime, **kwargs)


def shop_functions(path: str | Path, names: list[str] | tuple[str, ...] | None = None) -> list[Callable[..., Any]]:
    """The domain tools of the shop at `path` as thread-safe functions with the same names, signatures and
    docstrings as `Shop`'s methods (notebook 07): each call opens the database, runs, and closes it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No shop database at {path}: build one with Shop.create({str(path)!r}).")
    names = list(TOOL_NAMES) if names is None else list(names)
    unknown = [n for n in names if n not in TOOL_NAMES]
    if unknown:
        raise KeyError(f"Unknown tool(s) {unknown}; the shop has {list(TOOL_NAMES)}.")

    def make(name: str) -> Callable[..., Any]:
        method = getattr(Shop, name)

        @functools.wraps(method)
        def fn(*args: Any, **kwargs: Any) -> dict[str, Any]:
            shop = Shop(path)
            try:
                return getattr(shop, name)(*args, **kwargs)
            finally:
                shop.close()

        hints = get_type_hints(method, include_extras=True)  # resolved types, not the strings of the module
        sig = inspect.signature(method)
        params = [p.replace(annotation=hints[p.name]) for p in sig.parameters.values() if p.name != "self"]
        fn.__signature__ = sig.replace(parameters=params, return_annotation=hints.get("return", sig.return_annotation))
        fn.__annotations__ = {k: v for k, v in hints.items() if k != "self"}
        del fn.__wrapped__  # the framework must see the signature above, without `self`
        return fn

    return [make(n) for n in TOOL_NAMES if n in names]


def guard_middleware(guard: Any, audit: Any | None = None) -> list[Callable[..., Any]]:
    """Framework middleware that applies a `Guard` (notebook 06): pass the list as `Agent(middleware=...)`.

    An agent middleware starts each run with `check_input` on the newest user message (a refusal ends the
    run with the reason, the model is not called) and withholds an answer that fails `check_output`; a
    function middleware runs `check_call` before each tool (a refusal becomes the tool result and the
    function does not run) and `check_tool_result` on its output, with an audit record either way.
    """
    from agent_framework import AgentResponse, Message, agent_middleware, function_middleware

    @agent_middleware
    async def guarded_run(context: Any, call_next: Callable[[], Any]) -> None:
        users = [m for m in context.messages if str(m.role) == "user"]
        reason = guard.check_input(users[-1].text if users else "")
        if reason:
            context.result = AgentResponse(messages=[Message("assistant", [f"input refused: {reason}"])])
            return
        await call_next()
        result = context.result
        text = getattr(result, "text", None)
        if isinstance(text, str) and text:
            reason = guard.check_output(text)
            if reason:
                context.result = AgentResponse(messages=[Message("assistant", [f"answer withheld: {reason}"])])

    @function_middleware
    async def guarded_call(context: Any, call_next: Callable[[], Any]) -> None:
        name = context.function.name
        raw = context.arguments
        args = dict(raw.model_dump() if hasattr(raw, "model_dump") else raw or {})
        reason = guard.check_call(name, args)
        if reason:
            if audit is not None:
                audit.record({"tool": name, "arguments": args, "decision": "refused", "reason": reason,
                              "via": "agent-framework"})
            context.result = json.dumps({"error": f"not allowed: {reason}"})
            return
        await call_next()
        text = _result_text(context.result)
        screened = guard.check_tool_result(name, text)
        if audit is not None:
            audit.record({"tool": name, "arguments": args, "decision": "allowed", "result": text,
                          "via": "agent-framework"})
        if screened != text:
            context.result = screened

    return [guarded_run, guarded_call]


def _result_text(result: Any) -> str:
    if isinstance(result, str):
        return result
    if isinstance(result, list):  # list[Content]
        return "".join(str(getattr(c, "text", None) or getattr(c, "result", None) or "") for c in result)
    return json.dumps(result, ensure_ascii=False, default=str)


def in_memory_telemetry() -> Any:
    """Send the framework's OpenTelemetry spans to an in-memory exporter (notebook 07); returns the
    exporter (call `.get_finished_spans()`, `.clear()`). Idempotent: one tracer provider per process."""
    global _TELEMETRY
    if _TELEMETRY is not None:
        return _TELEMETRY
    from agent_framework.observability import enable_instrumentation
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    enable_instrumentation(enable_sensitive_data=False)
    _TELEMETRY = exporter
    return exporter


def span_table(spans: list[Any]) -> list[dict[str, Any]]:
    """Name, duration in ms and the GenAI attributes of finished spans, oldest first (notebook 07)."""
    rows = []
    for s in sorted(spans, key=lambda s: s.start_time):
        attrs = dict(s.attributes or {})
        rows.append({"span": s.name, "ms": round((s.end_time - s.start_time) / 1e6, 1),
                     **{k: v for k, v in attrs.items() if k.startswith("gen_ai.") and not isinstance(v, str)
                        or k in ("gen_ai.operation.name", "gen_ai.request.model", "gen_ai.response.model",
                                 "gen_ai.tool.name", "gen_ai.agent.name")}})
    return rows


def answered_by(response: Any, runtime: Any) -> str:
    """`runtime/model` for a framework response: the model the server reported, else the runtime's."""
    model = None
    raw = getattr(response, "raw_representation", None)
    for candidate in (response, raw, *(raw if isinstance(raw, list) else [])):
        model = getattr(candidate, "model_id", None) or getattr(candidate, "model", None)
        if isinstance(model, str) and model:
            break
        model = None
    return f"{getattr(runtime, 'name', 'server')}/{model or runtime.model}"


__all__ = ["answered_by", "chat_client", "reply_check", "unusable_reply", "guard_middleware", "in_memory_telemetry",
           "runtime_chat_client",
           "shop_functions", "span_table"]
