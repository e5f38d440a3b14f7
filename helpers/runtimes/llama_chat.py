"""Chat on llama.cpp with the workbook model's format: shared by the embedded runtime and the server.

Introduced in notebook 01. llama-cpp-python's built-in chat handlers return a model's tool-call text in
`content`; this handler renders the workbook's chat template, generates, and parses the tool-call text
into OpenAI `tool_calls` (streaming too, with `finish_reason: "tool_calls"`).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Iterator

from helpers.domain.chat_format import CALL_START, dump_json, parse_reply, render
# the one message normaliser lives in helpers.runtimes.wire; imported here too so old imports keep working
from helpers.runtimes.wire import ROLES, normalize_messages  # noqa: F401

class ContextOverflow(ValueError):
    """The conversation does not fit the model's context window."""


def _call_id() -> str:
    return "call_" + uuid.uuid4().hex[:12]


def _tokens(llama, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
            max_tokens: int) -> list[int]:
    prompt = render(normalize_messages(messages), tools, add_generation_prompt=True)
    toks = llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
    check_context(len(toks), max_tokens, llama.n_ctx())
    return toks


def check_context(n_prompt: int, max_tokens: int, n_ctx: int) -> None:
    """Raise ContextOverflow unless a prompt of `n_prompt` tokens plus `max_tokens` fits an `n_ctx` context."""
    if n_prompt + max_tokens > n_ctx:
        raise ContextOverflow(f"The conversation is {n_prompt} tokens and the reply may take {max_tokens}: over the "
                              f"model's {n_ctx}-token context. Drop or summarise old turns (the agent notebooks on "
                              "memory show how).")


def _completion(llama, toks, temperature, max_tokens, seed, stream, grammar=None):
    return llama.create_completion(prompt=toks, max_tokens=max_tokens, temperature=temperature, top_p=1.0,
                                   top_k=0 if temperature == 0 else 40, repeat_penalty=1.0, seed=seed,
                                   stream=stream, grammar=grammar)


def chat_completion(llama, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
                    temperature: float = 0.0, max_tokens: int = 256, seed: int = 123, model: str = "edge-slm",
                    grammar=None) -> dict[str, Any]:
    """An OpenAI chat.completion dict from the model; tool calls parsed, raw text kept in `x_raw`."""
    toks = _tokens(llama, messages, tools, max_tokens)
    t0 = time.perf_counter()
    out = _completion(llama, toks, temperature, max_tokens, seed, False, grammar)
    raw = out["choices"][0]["text"]
    parsed = parse_reply(raw, known_tools=[t.get("function", t)["name"] for t in tools or []])
    msg: dict[str, Any] = {"role": "assistant", "content": parsed.content}
    finish = out["choices"][0].get("finish_reason") or "stop"
    if parsed.tool_calls:
        msg["tool_calls"] = [{"id": _call_id(), "type": "function",
                              "function": {"name": c["name"], "arguments": dump_json(c["arguments"])}}
                             for c in parsed.tool_calls]
        msg["content"] = parsed.content or None
        finish = "tool_calls"
    elif parsed.error:
        msg["content"] = raw  # what the model wrote, for the caller to see; the error says why it is not a call
    return {"id": "chatcmpl-" + uuid.uuid4().hex[:12], "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": msg, "finish_reason": finish, "logprobs": None}],
            "usage": {"prompt_tokens": len(toks), "completion_tokens": out["usage"]["completion_tokens"],
                      "total_tokens": len(toks) + out["usage"]["completion_tokens"]},
            "x_raw": raw, "x_error": parsed.error, "x_seconds": time.perf_counter() - t0}


def chat_completion_stream(llama, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
                           temperature: float = 0.0, max_tokens: int = 256, seed: int = 123,
                           model: str = "edge-slm", grammar=None) -> Iterator[dict[str, Any]]:
    """OpenAI chat.completion.chunk dicts. Text streams as it comes; a tool call is sent whole once closed."""
    toks = _tokens(llama, messages, tools, max_tokens)
    cid = "chatcmpl-" + uuid.uuid4().hex[:12]
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}

    yield chunk({"role": "assistant", "content": ""})
    buf = ""
    mode = None  # "call" or "text", decided by the first visible piece (<tool_call> is a single token)
    finish = "stop"
    n_out = 0
    for part in _completion(llama, toks, temperature, max_tokens, seed, True, grammar):
        if part["choices"][0].get("finish_reason") is None:
            n_out += 1  # one part per generated token, then a closing part: the count matches `usage` unstreamed
        piece = part["choices"][0]["text"]
        finish = part["choices"][0].get("finish_reason") or finish
        buf += piece
        if mode is None:
            if not buf.strip():
                continue
            mode = "call" if buf.lstrip().startswith(CALL_START) else "text"
            if mode == "text":
                yield chunk({"content": buf})
        elif mode == "text" and piece:
            yield chunk({"content": piece})
    if mode == "call":
        parsed = parse_reply(buf, known_tools=[t.get("function", t)["name"] for t in tools or []])
        if parsed.tool_calls:
            calls = [{"index": i, "id": _call_id(), "type": "function",
                      "function": {"name": c["name"], "arguments": dump_json(c["arguments"])}}
                     for i, c in enumerate(parsed.tool_calls)]
            yield chunk({"tool_calls": calls})
            finish = "tool_calls"
        else:  # malformed call text: pass it on as text so the caller sees what the model wrote
            yield chunk({"content": buf})
    last = chunk({}, finish)
    last["usage"] = {"prompt_tokens": len(toks), "completion_tokens": n_out, "total_tokens": len(toks) + n_out}
    yield last  # the usage rides on the last chunk; the server sends it on as OpenAI's usage chunk when asked
