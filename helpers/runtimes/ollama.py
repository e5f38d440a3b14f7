"""The `ollama` runtime: an Ollama server a learner runs, through the official `ollama` client.

Introduced in notebook 00; used in notebooks 14 (Ollama) and 17 (runtimes side by side) when Ollama is
running. The Ollama server is not installable on the workbook's CI machines, so there this runtime reports
itself unavailable (with how to start it) and the notebooks say so and use the workbook's own server instead.
It is never faked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from helpers.runtimes.base import Availability, ChatResult, Runtime, RuntimeUnavailable, StreamEvent, Timer
from helpers.runtimes.wire import decode_calls, http_get_json, ollama_wire_messages


def ollama_host() -> str:
    """OLLAMA_HOST as a URL (Ollama's own default is 127.0.0.1:11434)."""
    host = os.environ.get("OLLAMA_HOST", "127.0.0.1:11434")
    if not host.startswith("http"):
        host = "http://" + host
    return host.rstrip("/")


# kept under its old name: Ollama's wire format is shaped in helpers.runtimes.wire
to_ollama_messages = ollama_wire_messages


def decode_tokens_per_s(resp: Any) -> float | None:
    """Decode speed Ollama measured itself: eval_count / eval_duration (nanoseconds) * 1e9 (notebook 14)."""
    count, ns = _get(resp, "eval_count"), _get(resp, "eval_duration")
    return count / ns * 1e9 if count and ns else None


def prefill_tokens_per_s(resp: Any) -> float | None:
    """Prompt speed Ollama measured: prompt_eval_count / prompt_eval_duration (nanoseconds) * 1e9."""
    count, ns = _get(resp, "prompt_eval_count"), _get(resp, "prompt_eval_duration")
    return count / ns * 1e9 if count and ns else None


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def parse_chat_response(data: Any) -> Any:
    """An /api/chat answer (a dict from JSON, recorded or live, or the client's object) as ollama.ChatResponse."""
    import ollama

    if isinstance(data, ollama.ChatResponse):
        return data
    if "message" not in data:  # the docs' final stream chunk omits it; a live one carries an empty message
        data = {**data, "message": {"role": "assistant", "content": ""}}
    return ollama.ChatResponse.model_validate(data)


def result_from_ollama(resp: Any, tools: list[dict[str, Any]] | None, model: str | None = None,
                       total_s: float = 0.0) -> ChatResult:
    """One ChatResult from an /api/chat answer; the same code reads live and recorded answers (notebook 14).

    Ollama returns tool-call arguments as a JSON object (OpenAI: a string); they are checked against the
    offered tools' schemas like every other runtime's."""
    resp = parse_chat_response(resp)
    msg = resp.message
    raw_calls = [{"id": f"call_{i}", "function": {"name": c.function.name, "arguments": dict(c.function.arguments)}}
                 for i, c in enumerate(msg.tool_calls or [])]
    calls, err = decode_calls(raw_calls, tools)
    return ChatResult(runtime="ollama", model=model or resp.model or "?", content=msg.content or "",
                      tool_calls=calls, error=err,
                      finish_reason="tool_calls" if calls else (resp.done_reason or "stop"),
                      prompt_tokens=resp.prompt_eval_count or 0, completion_tokens=resp.eval_count or 0,
                      total_s=total_s or (resp.total_duration or 0) / 1e9)


def ollama_error(exc: Exception, model: str) -> dict[str, str]:
    """A structured error for an Ollama ResponseError, with what to do about it."""
    text = str(getattr(exc, "error", exc))
    if "does not support tools" in text:
        return {"type": "no_tools_capability",
                "message": f"Ollama model {model!r} has no 'tools' capability ({text}): give it a TEMPLATE that uses "
                           ".Tools and .ToolCalls (notebook 14 renders one), or pick a model whose `ollama show` "
                           "lists tools"}
    if "not found" in text:
        return {"type": "model_not_found", "message": f"{text}: `ollama pull {model}` or register it (notebook 14)"}
    return {"type": "server_error", "message": f"HTTP {getattr(exc, 'status_code', '?')}: {text}"}


def require_capability(show: Any, capability: str = "tools", model: str = "") -> None:
    """Raise ValueError unless /api/show lists `capability` (e.g. tools) for the model."""
    caps = _get(show, "capabilities")
    if caps is None:
        raise ValueError(f"Ollama did not report capabilities for {model or 'this model'} (an Ollama older than "
                         "0.6?): update Ollama, or try one request with tools and read the error")
    if capability not in caps:
        raise ValueError(f"Ollama model {model or '?'} lacks the {capability!r} capability (it has {list(caps)}): "
                         "register it with a TEMPLATE that uses .Tools/.ToolCalls, or choose a model whose "
                         f"`ollama show` lists {capability}")


class OllamaRuntime(Runtime):
    """Chat with a model served by a running Ollama (`ollama serve`)."""

    name = "ollama"

    def __init__(self, model: str | None = None, host: str | None = None) -> None:
        self.host = (host or ollama_host()).rstrip("/")
        self._model = model or os.environ.get("EDGEAI_MODEL")
        self._client = None

    def availability(self) -> Availability:
        fix = (f"install Ollama from ollama.com, run `ollama serve` and `ollama pull llama3.2:1b` "
               f"(or set OLLAMA_HOST); it is looked for at {self.host}")
        try:
            data = http_get_json(self.host + "/api/tags", timeout=1.0)
        except (OSError, ValueError) as exc:
            return Availability(self.name, False, f"Ollama is not running at {self.host} ({type(exc).__name__})", fix)
        models = [m.get("name") or m.get("model") for m in data.get("models", [])]
        if not models:
            return Availability(self.name, False, f"Ollama runs at {self.host} but has no model pulled",
                                "pull one: `ollama pull llama3.2:1b`")
        return Availability(self.name, True, f"Ollama at {self.host}", models=models)

    @property
    def model(self) -> str:
        if not self._model:
            av = self.availability()
            if not av.ok:
                raise RuntimeUnavailable(f"ollama: {av.detail}; {av.fix}")
            self._model = av.models[0]
        return self._model

    @property
    def client(self):  # -> ollama.Client
        if self._client is None:
            import ollama

            self._client = ollama.Client(host=self.host)
        return self._client

    def _options(self, temperature: float, max_tokens: int, seed: int) -> dict[str, Any]:
        return {"temperature": temperature, "num_predict": max_tokens, "seed": seed}

    def chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
             temperature: float = 0.0, max_tokens: int = 256, seed: int = 123) -> ChatResult:
        import httpx
        import ollama

        timer = Timer()
        try:
            resp = self.client.chat(model=self.model, messages=ollama_wire_messages(messages), tools=tools or None,
                                    options=self._options(temperature, max_tokens, seed))
        except (httpx.ConnectError, ConnectionError) as exc:
            raise RuntimeUnavailable(f"ollama: lost the server at {self.host} ({exc}); "
                                     "is `ollama serve` running?") from None
        except ollama.ResponseError as exc:  # e.g. "... does not support tools": say what to do, keep going
            return ChatResult(runtime=self.name, model=self.model, finish_reason="error", total_s=timer.elapsed,
                              error=ollama_error(exc, self.model))
        return result_from_ollama(resp, tools, self.model, total_s=timer.elapsed)

    def stream(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
               temperature: float = 0.0, max_tokens: int = 256, seed: int = 123) -> Iterator[StreamEvent]:
        timer = Timer()
        text, raw_calls, last = "", [], None
        for part in self.client.chat(model=self.model, messages=ollama_wire_messages(messages), tools=tools or None,
                                     options=self._options(temperature, max_tokens, seed), stream=True):
            last = part
            if part.message.content:
                timer.mark_first()
                text += part.message.content
                yield StreamEvent(delta=part.message.content)
            for c in part.message.tool_calls or []:
                raw_calls.append({"id": f"call_{len(raw_calls)}",
                                  "function": {"name": c.function.name, "arguments": dict(c.function.arguments)}})
        calls, err = decode_calls(raw_calls, tools)
        res = ChatResult(runtime=self.name, model=self.model, content=text, tool_calls=calls, error=err,
                         finish_reason="tool_calls" if calls else "stop",
                         prompt_tokens=getattr(last, "prompt_eval_count", 0) or 0,
                         completion_tokens=getattr(last, "eval_count", 0) or 0, ttft_s=timer.first,
                         total_s=timer.elapsed)
        yield StreamEvent(result=res)
