"""Messages in, wire formats out: the one home of message shapes, shared by every runtime (notebook 01).

`normalize_messages` turns a learner's OpenAI-style messages into the canonical form (checked roles, text
content, tool-call arguments as compact JSON text); `openai_wire_messages` and `ollama_wire_messages` shape
them for a server; `arguments_dict` reads tool-call arguments sent as JSON text or as an object. Replies come
back through `decode_calls` and `stream_events`, so every runtime returns the same `ChatResult` for the same
reply.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any, Iterable, Iterator

from helpers.domain.chat_format import compact_json_text, dump_json
from helpers.runtimes.base import ChatResult, StreamEvent, Timer, ToolCall, validate_call

ROLES = ("system", "user", "assistant", "tool")


def normalize_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check roles and content, turn `content: None` into "" and tool-call arguments into JSON text.

    Tool results and call arguments that are JSON are re-written compactly (`compact_json_text`): the model
    reads the same prompt whether a client sent `json.dumps(x)` or the compact text the agent loop sends."""
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts.")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ValueError(f"message {i} needs a role among {ROLES}; got {m!r:.80}")
        m = dict(m)
        content = m.get("content")
        if content is None:
            content = ""
        if isinstance(content, list):  # OpenAI content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise ValueError(f"message {i}: content must be text, got {type(content).__name__}.")
        m["content"] = compact_json_text(content) if m["role"] == "tool" else content
        if m.get("tool_calls"):
            calls = []
            for tc in m["tool_calls"]:
                f = dict(tc.get("function", tc))
                if isinstance(f.get("arguments"), str):
                    f["arguments"] = compact_json_text(f["arguments"])
                else:
                    f["arguments"] = dump_json(f.get("arguments") or {})
                calls.append({**tc, "function": f})
            m["tool_calls"] = calls
        out.append(m)
    return out


def arguments_dict(arguments: Any) -> dict[str, Any]:
    """Tool-call arguments as a dict, whether sent as JSON text (OpenAI) or as an object (Ollama); None and ""
    are {}. Raises json.JSONDecodeError for text that is not JSON, ValueError for JSON that is not an object."""
    if arguments is None or arguments == "":
        return {}
    value = json.loads(arguments) if isinstance(arguments, str) else arguments
    if not isinstance(value, dict):
        raise ValueError("tool-call arguments are not a JSON object")
    return value


def openai_wire_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages for an OpenAI-compatible server: `content: None` becomes "" (llama.cpp's server answers HTTP 500
    to `content: null`); everything else goes as the learner wrote it (roles such as `developer` included)."""
    return [{**m, "content": ""} if m.get("content") is None else m for m in messages]


def ollama_wire_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI-style messages as Ollama wants them: tool-call arguments as objects, no null content."""
    out = []
    for m in messages:
        m = {k: v for k, v in m.items() if k in ("role", "content", "tool_calls", "tool_name")}
        m["content"] = m.get("content") or ""
        if m.get("tool_calls"):
            m["tool_calls"] = [{"function": {"name": tc.get("function", tc)["name"],
                                             "arguments": arguments_dict(tc.get("function", tc).get("arguments"))}}
                               for tc in m["tool_calls"]]
        out.append(m)
    return out


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
        try:
            args = arguments_dict(args_text)
        except json.JSONDecodeError as exc:
            return calls, {"type": "invalid_json", "message": f"arguments of {name} are not JSON: {exc.msg}",
                           "raw": str(args_text)}
        except RecursionError:
            return calls, {"type": "invalid_json", "message": f"arguments of {name} are nested too deeply",
                           "raw": str(args_text)[:200]}
        except ValueError:
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
    text, finish = "", None
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
    if finish is None:  # a stream that ended without a finish reason was cut: never read it as "stop"
        return ChatResult(runtime=runtime, model=model, content=text, tool_calls=decoded, finish_reason="error",
                          error={"type": "stream_incomplete", "message": "the stream ended without a finish reason "
                                 f"after {len(text)} characters: the answer is incomplete"})
    return ChatResult(runtime=runtime, model=model, content=text, tool_calls=decoded,
                      error=err or call_text_error(text, decoded), finish_reason=finish)


def status_error(exc: Any) -> dict[str, str]:
    """A structured error from an HTTP error answer of an OpenAI-compatible server (`openai.APIStatusError`):
    a context overflow is told apart from other refusals, so an agent does not retry it as a bad tool call."""
    body = exc.body if isinstance(getattr(exc, "body", None), dict) else {}
    err = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
    code = str(err.get("code") or "")
    message = str(err.get("message") or exc.message)
    overflow = code == "context_length_exceeded" or "context" in message.lower() and "token" in message.lower()
    return {"type": "context_overflow" if overflow else "server_error",
            "message": f"HTTP {exc.status_code}: {message}"[:500]}


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


def stop_process(proc: Any, timeout: float = 10.0) -> None:
    """End a server process the workbook started: SIGTERM, then SIGKILL if it has not exited after `timeout`
    seconds (introduced in notebook 11; every runtime, Prometheus and the gateway stop their processes so)."""
    import subprocess

    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
