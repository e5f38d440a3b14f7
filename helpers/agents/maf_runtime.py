"""A Microsoft Agent Framework chat client over any workbook runtime (notebook 12, Foundry Local).

`RuntimeChatClient(runtime)` is the framework's `BaseChatClient` with its own layers around it (function
invocation, chat middleware, OpenTelemetry), the way the framework composes its public clients; its one
method, `_inner_get_response`, sends the conversation through `Runtime.chat` (or `Runtime.stream` when the
framework streams). With `get_runtime("foundry")` it reaches Foundry Local's in-process `ChatSession`.

Why it exists: the framework's own Foundry Local client (`agent-framework-foundry-local`) talks HTTP to the
Foundry Local service through the legacy SDK (`foundry-local-sdk` 0.5.1, module `foundry_local`); it cannot
install beside the in-process SDK 2.x, and the 2.x web service cannot serve a bring-your-own model offline.

This module imports the framework at import time: import it through `helpers.agents.maf.runtime_chat_client`.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar

from agent_framework import (
    BaseChatClient,
    ChatMiddlewareLayer,
    ChatResponse,
    ChatResponseUpdate,
    Content,
    FunctionInvocationLayer,
    Message,
)
from agent_framework.exceptions import ChatClientInvalidResponseException
from agent_framework.observability import ChatTelemetryLayer

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_END = object()


def openai_tool(tool: Any) -> dict[str, Any]:
    """A framework tool (a `FunctionTool`, or an OpenAI-style dict) as an OpenAI `tools` entry, checked:
    a name of letters, digits, `_` or `-` and a JSON-schema object for the parameters, or a ValueError."""
    if hasattr(tool, "to_json_schema_spec"):
        spec = tool.to_json_schema_spec()
    elif isinstance(tool, Mapping):
        spec = dict(tool) if "function" in tool else {"type": "function", "function": dict(tool)}
    else:
        raise ValueError(f"tool {tool!r:.60} is not a function tool: pass typed Python functions or FunctionTool "
                         "objects (hosted tools need a service).")
    f = spec.get("function") or {}
    name = f.get("name")
    if not isinstance(name, str) or not _TOOL_NAME.match(name):
        raise ValueError(f"tool name {name!r} is invalid: use 1-64 letters, digits, '_' or '-'.")
    params = f.get("parameters") or {"type": "object", "properties": {}}
    if not isinstance(params, Mapping) or params.get("type", "object") != "object":
        raise ValueError(f"tool {name!r}: parameters must be a JSON-schema object ({{'type': 'object', "
                         f"'properties': {{...}}}}), got {params!r:.80}.")
    return {"type": "function", "function": {"name": name, "description": f.get("description") or "",
                                             "parameters": dict(params)}}


def to_openai_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Framework messages as OpenAI chat messages: text, function calls as `tool_calls`, function results as
    `tool` messages (one per result, answering its call id)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        role = str(getattr(m.role, "value", m.role))
        text, calls = "", []
        for c in m.contents:
            if c.type == "text":
                text += c.text or ""
            elif c.type == "function_call":
                args = c.arguments
                args = args if isinstance(args, str) else json.dumps(dict(args or {}), ensure_ascii=False)
                calls.append({"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": args}})
            elif c.type == "function_result":
                result = c.result
                if not isinstance(result, str):
                    result = json.dumps(result, ensure_ascii=False, default=str)
                out.append({"role": "tool", "tool_call_id": c.call_id, "content": result})
        if role == "tool":
            continue  # its results were added above
        if role not in ("system", "user", "assistant"):
            role = "user"
        if text or calls:
            msg: dict[str, Any] = {"role": role, "content": text}
            if calls:
                msg["tool_calls"] = calls
            out.append(msg)
    return out


class RuntimeChatClient(FunctionInvocationLayer[Any], ChatMiddlewareLayer[Any], ChatTelemetryLayer[Any],
                        BaseChatClient[Any]):
    """An Agent Framework chat client whose model is a workbook `Runtime` (notebook 12)."""

    OTEL_PROVIDER_NAME: ClassVar[str] = "edge-slm-workbook"

    def __init__(self, runtime: Any, *, max_tokens: int = 256, **kwargs: Any) -> None:
        if not callable(getattr(runtime, "chat", None)):
            raise TypeError(f"{runtime!r} is not a workbook runtime: pass get_runtime('foundry') or another one.")
        self.runtime = runtime
        self.model = runtime.model
        self.default_max_tokens = max_tokens
        super().__init__(**kwargs)

    def _request(self, messages: Sequence[Message], options: Mapping[str, Any]) -> dict[str, Any]:
        tools = [openai_tool(t) for t in options.get("tools") or []]
        if options.get("tool_choice") == "none":
            tools = []
        return {"messages": to_openai_messages(messages), "tools": tools or None,
                "temperature": float(options.get("temperature") or 0.0),
                "max_tokens": int(options.get("max_tokens") or self.default_max_tokens),
                "seed": int(options.get("seed") if options.get("seed") is not None else 123)}

    def _contents(self, result: Any) -> list[Content]:
        if result.error:
            raise ChatClientInvalidResponseException(
                f"{result.answered_by}: {result.error.get('type')}: {result.error.get('message')}")
        contents = [Content.from_function_call(call_id=c.id, name=c.name, arguments=dict(c.arguments))
                    for c in result.tool_calls]
        return contents

    def _usage(self, result: Any) -> dict[str, int]:
        return {"input_token_count": result.prompt_tokens, "output_token_count": result.completion_tokens,
                "total_token_count": result.prompt_tokens + result.completion_tokens}

    def _inner_get_response(self, *, messages: Sequence[Message], stream: bool, options: Mapping[str, Any],
                            **kwargs: Any) -> Any:
        if stream:
            return self._build_response_stream(self._stream(messages, options))

        async def _get() -> ChatResponse:
            opts = await self._validate_options(options)
            req = self._request(messages, opts)
            result = await asyncio.to_thread(lambda: self.runtime.chat(
                req["messages"], req["tools"], temperature=req["temperature"], max_tokens=req["max_tokens"],
                seed=req["seed"]))
            contents = self._contents(result)
            if result.content:
                contents.insert(0, Content.from_text(result.content))
            return ChatResponse(messages=[Message("assistant", contents)], model=result.model,
                                finish_reason=result.finish_reason, usage_details=self._usage(result),
                                raw_representation=result)

        return _get()

    async def _stream(self, messages: Sequence[Message],
                      options: Mapping[str, Any]) -> AsyncIterator[ChatResponseUpdate]:
        opts = await self._validate_options(options)
        req = self._request(messages, opts)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def work() -> None:  # the runtime streams in a worker thread; its events cross to the event loop
            try:
                for ev in self.runtime.stream(req["messages"], req["tools"], temperature=req["temperature"],
                                              max_tokens=req["max_tokens"], seed=req["seed"]):
                    loop.call_soon_threadsafe(queue.put_nowait, ev)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _END)

        worker = loop.run_in_executor(None, work)
        try:
            while (ev := await queue.get()) is not _END:
                if isinstance(ev, BaseException):
                    raise ev
                if ev.delta and (ev.result is None):
                    yield ChatResponseUpdate(role="assistant", contents=[Content.from_text(ev.delta)],
                                             model=self.model)
                if ev.result is not None:
                    res = ev.result
                    contents = self._contents(res) + [Content.from_usage(self._usage(res))]
                    yield ChatResponseUpdate(role="assistant", contents=contents, model=res.model,
                                             finish_reason=res.finish_reason)
        finally:
            await worker


__all__ = ["RuntimeChatClient", "openai_tool", "to_openai_messages"]
