"""The OpenAI wire format, shared by every runtime: decode tool calls, assemble streamed chunks, read JSON.

Introduced in notebook 01 with the runtimes that speak the OpenAI chat API; the in-process runtimes use the
same functions so every runtime returns the same `ChatResult` for the same reply.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any, Iterable, Iterator

from helpers.runtimes.base import ChatResult, StreamEvent, Timer, ToolCall, validate_call


def http_get_json(url: str, timeout: float = 1.0, headers: dict[str, str] | None = None) -> Any:
    """GET a JSON document; raises OSError/ValueError when the server is absent or answers garbage."""
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (URL comes from the learner's config)
        return json.loads(resp.read().decode("utf-8"))


def decode_calls(raw_calls: list[Any], tools: list[dict[str, Any]] | None) -> tuple[list[ToolCall], dict | None]:
    """OpenAI `tool_calls` into ToolCalls; bad JSON, unknown tools or schema failures become an error."""
    calls: list[ToolCall] = []
    for i, tc in enumerate(raw_calls or []):
        f = tc["function"] if isinstance(tc, dict) else tc.function
        name = f["name"] if isinstance(f, dict) else f.name
        args_text = f["arguments"] if isinstance(f, dict) else f.arguments
        cid = (tc.get("id") if isinstance(tc, dict) else tc.id) or f"call_{i}"
        if isinstance(args_text, dict):
            args = args_text
        else:
            try:
                args = json.loads(args_text or "{}")
            except json.JSONDecodeError as exc:
                return calls, {"type": "invalid_json", "message": f"arguments of {name} are not JSON: {exc.msg}",
                               "raw": str(args_text)}
        if not isinstance(args, dict):
            return calls, {"type": "bad_arguments", "message": f"arguments of {name} are not a JSON object"}
        call = ToolCall(cid, name, args)
        err = validate_call(call, tools)
        if err:
            return calls, err
        calls.append(call)
    return calls, None


def stream_events(chunks: Iterable[dict[str, Any]], runtime: str, model: str,
                  tools: list[dict[str, Any]] | None, timer: Timer | None = None) -> Iterator[StreamEvent]:
    """Text deltas of streamed chat.completion.chunk dicts as they arrive, then the assembled ChatResult
    (with time to first token, counted from `timer`'s start): one streaming loop for every runtime that
    streams chunks."""
    timer = timer or Timer()
    seen = []
    for d in chunks:
        if not d.get("choices"):
            continue
        seen.append(d)
        delta = d["choices"][0]["delta"].get("content")
        if delta:
            timer.mark_first()
            yield StreamEvent(delta=delta)
    res = result_from_chunks(seen, runtime, model, tools)
    res.ttft_s, res.total_s = timer.first, timer.elapsed
    yield StreamEvent(result=res)


def result_from_chunks(chunks: list[dict[str, Any]], runtime: str, model: str,
                       tools: list[dict[str, Any]] | None) -> ChatResult:
    """Assemble streamed chat.completion.chunk dicts into one ChatResult."""
    text, finish = "", "stop"
    calls: dict[int, dict[str, Any]] = {}
    for ch in chunks:
        choice = ch["choices"][0]
        d = choice.get("delta") or {}
        text += d.get("content") or ""
        for tc in d.get("tool_calls") or []:
            slot = calls.setdefault(tc.get("index", 0), {"id": tc.get("id"), "function": {"name": "", "arguments": ""}})
            f = tc.get("function") or {}
            slot["id"] = slot["id"] or tc.get("id")
            slot["function"]["name"] += f.get("name") or ""
            slot["function"]["arguments"] += f.get("arguments") or ""
        finish = choice.get("finish_reason") or finish
    decoded, err = decode_calls([calls[k] for k in sorted(calls)], tools)
    return ChatResult(runtime=runtime, model=model, content=text, tool_calls=decoded,
                      error=err or call_text_error(text, decoded), finish_reason=finish)


def call_text_error(content: str, calls: list[ToolCall]) -> dict[str, str] | None:
    """A structured error when a reply carries tool-call text that did not become a call (malformed)."""
    from helpers.domain.chat_format import CALL_START, parse_reply

    if calls or CALL_START not in (content or ""):
        return None
    return parse_reply(content).error or {"type": "bad_call", "message": "tool-call text that is not a valid call",
                                          "raw": content}


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
