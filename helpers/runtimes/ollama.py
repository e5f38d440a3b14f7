"""The `ollama` runtime: an Ollama server a learner runs, through the official `ollama` client.

Introduced in notebook 00; used in the deployment notebooks when Ollama is running. The Ollama server is
not installable on the workbook's CI machines, so there this runtime reports itself unavailable (with
how to start it) and the notebooks say so and use the workbook's own server instead. It is never faked.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

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

        timer = Timer()
        try:
            resp = self.client.chat(model=self.model, messages=ollama_wire_messages(messages), tools=tools or None,
                                    options=self._options(temperature, max_tokens, seed))
        except (httpx.ConnectError, ConnectionError) as exc:
            raise RuntimeUnavailable(f"ollama: lost the server at {self.host} ({exc}); "
                                     "is `ollama serve` running?") from None
        msg = resp.message
        raw_calls = [{"id": f"call_{i}", "function": {"name": c.function.name, "arguments": dict(c.function.arguments)}}
                     for i, c in enumerate(msg.tool_calls or [])]
        calls, err = decode_calls(raw_calls, tools)
        return ChatResult(runtime=self.name, model=self.model, content=msg.content or "", tool_calls=calls, error=err,
                          finish_reason="tool_calls" if calls else (resp.done_reason or "stop"),
                          prompt_tokens=resp.prompt_eval_count or 0, completion_tokens=resp.eval_count or 0,
                          total_s=timer.elapsed)

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
