"""Runtimes that speak the OpenAI chat API: a vLLM server, any OpenAI-compatible endpoint, and the
workbook's own llama.cpp server (started by `LlamaCppServerRuntime` on 127.0.0.1).

Introduced in notebook 01; the vLLM and Ollama notebooks use the same client code against whatever
server a learner has, and against the workbook's own server when they have none.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterable, Iterator

from helpers.runtimes.base import (Availability, ChatResult, Runtime, RuntimeUnavailable, StreamEvent, Timer,
                                   ToolCall, validate_call)


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
            except RecursionError:
                return calls, {"type": "invalid_json", "message": f"arguments of {name} are nested too deeply",
                               "raw": str(args_text)[:200]}
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
    from helpers.model.chat_format import CALL_START, parse_reply

    if calls or CALL_START not in (content or ""):
        return None
    return parse_reply(content).error or {"type": "bad_call", "message": "tool-call text that is not a valid call",
                                          "raw": content}


class OpenAICompatRuntime(Runtime):
    """Any server with the OpenAI chat-completions API at `base_url` (ending in /v1)."""

    name = "openai"
    env_url = "OPENAI_BASE_URL"
    env_key = "OPENAI_API_KEY"
    default_url: str | None = None
    how_to_start = ("set OPENAI_BASE_URL (e.g. http://127.0.0.1:8080/v1) and OPENAI_API_KEY for your "
                    "OpenAI-compatible server")

    def __init__(self, base_url: str | None = None, model: str | None = None, api_key: str | None = None,
                 timeout: float = 120.0) -> None:
        self.base_url = (base_url or os.environ.get(self.env_url) or self.default_url or "").rstrip("/")
        self._model = model or os.environ.get("EDGEAI_MODEL")
        # each runtime reads its own key variable: a cloud key is never sent to a local server
        self.api_key = api_key or (os.environ.get(self.env_key) if self.env_key else None) or "not-needed-locally"
        self.timeout = timeout
        self._client = None

    @property
    def model(self) -> str:
        if not self._model:
            av = self.availability()
            if not av.ok or not av.models:
                raise RuntimeUnavailable(f"{self.name}: {av.detail}; {av.fix}")
            self._model = av.models[0]
        return self._model

    def availability(self) -> Availability:
        if not self.base_url:
            return Availability(self.name, False, f"no server configured ({self.env_url} is not set)",
                                self.how_to_start)
        try:
            data = http_get_json(self.base_url + "/models", timeout=1.5,
                                 headers={"Authorization": f"Bearer {self.api_key}"})
            models = [m["id"] for m in data.get("data", [])]
        except (OSError, ValueError, KeyError) as exc:
            return Availability(self.name, False, f"nothing answers at {self.base_url} ({type(exc).__name__})",
                                self.how_to_start)
        return Availability(self.name, True, f"OpenAI-compatible server at {self.base_url}", models=models)

    @property
    def client(self):  # -> openai.OpenAI
        if self._client is None:
            from openai import OpenAI

            self._client = OpenAI(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout,
                                  max_retries=0)
        return self._client

    def _request(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, temperature: float,
                 max_tokens: int, seed: int, stream: bool = False) -> dict[str, Any]:
        """Keyword arguments of one chat.completions.create call (content None becomes "": llama.cpp's
        server answers HTTP 500 to `content: null`)."""
        wire = [{**m, "content": ""} if m.get("content") is None else m for m in messages]
        kwargs: dict[str, Any] = {"model": self.model, "messages": wire,
                                  "temperature": temperature, "max_tokens": max_tokens, "seed": seed}
        if stream:
            kwargs["stream"] = True
        if tools:
            kwargs["tools"] = tools
        return kwargs

    def chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
             temperature: float = 0.0, max_tokens: int = 256, seed: int = 123) -> ChatResult:
        import openai

        timer = Timer()
        kwargs = self._request(messages, tools, temperature, max_tokens, seed)
        try:
            resp = self.client.chat.completions.create(**kwargs)
        except openai.APIConnectionError as exc:
            raise RuntimeUnavailable(f"{self.name}: lost the server at {self.base_url} ({exc}); "
                                     f"{self.how_to_start}") from None
        except openai.APIStatusError as exc:  # the server refused the request: say why, keep going
            return ChatResult(runtime=self.name, model=self.model, finish_reason="error", total_s=timer.elapsed,
                              error=status_error(exc))
        choice = resp.choices[0]
        calls, err = decode_calls(choice.message.tool_calls or [], tools)
        err = err or call_text_error(choice.message.content or "", calls)
        usage = resp.usage
        return ChatResult(runtime=self.name, model=resp.model or self.model, content=choice.message.content or "",
                          tool_calls=calls, error=err, finish_reason=choice.finish_reason or "stop",
                          prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                          completion_tokens=getattr(usage, "completion_tokens", 0) or 0, total_s=timer.elapsed)

    def stream(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
               temperature: float = 0.0, max_tokens: int = 256, seed: int = 123) -> Iterator[StreamEvent]:
        import openai

        timer = Timer()
        kwargs = self._request(messages, tools, temperature, max_tokens, seed, stream=True)

        failure: dict[str, str] = {}

        def chunks() -> Iterator[dict[str, Any]]:
            try:
                for ch in self.client.chat.completions.create(**kwargs):
                    yield ch.model_dump()
            except openai.APIConnectionError as exc:
                raise RuntimeUnavailable(f"{self.name}: lost the server at {self.base_url} ({exc})") from None
            except openai.APIStatusError as exc:  # refused before the stream started (400, 404, 503 ...)
                failure.update(status_error(exc))
            except openai.APIError as exc:  # an error event in the stream: the answer so far is incomplete
                failure.update(type="stream_failed", message=f"the server reported an error midway: {exc.message}")

        for ev in stream_events(chunks(), self.name, self.model, tools, timer):
            if ev.result is not None and failure:
                ev.result.error, ev.result.finish_reason = dict(failure), "error"
            yield ev

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class VLLMRuntime(OpenAICompatRuntime):
    """A vLLM server a learner runs (`vllm serve MODEL`), at VLLM_BASE_URL or 127.0.0.1:8000."""

    name = "vllm"
    env_url = "VLLM_BASE_URL"
    env_key = "VLLM_API_KEY"
    default_url = "http://127.0.0.1:8000/v1"
    how_to_start = ("start vLLM on a machine with a GPU: `vllm serve <model> --host 127.0.0.1 --port 8000 "
                    "--enable-auto-tool-choice --tool-call-parser <parser>`, or set VLLM_BASE_URL")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaCppServerRuntime(OpenAICompatRuntime):
    """The workbook's OpenAI-compatible llama.cpp server, started on 127.0.0.1 and stopped by this object."""

    name = "llamacpp"
    env_url = "EDGEAI_LLAMACPP_URL"
    env_key = "EDGE_SLM_API_KEY"  # the server it starts reads the same variable (helpers.runtimes.server.API_KEY_ENV)
    how_to_start = "it starts by itself; if it fails, run `python -m helpers serve` to see the error"

    def __init__(self, model_path: str | Path | None = None, port: int | None = None, host: str = "127.0.0.1",
                 start: bool = True, startup_timeout: float = 60.0) -> None:
        from helpers.runtimes.embedded import default_gguf

        self.model_path = Path(model_path) if model_path else default_gguf()
        self.host, self.port = host, port or free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        super().__init__(base_url=f"http://{host}:{self.port}/v1", model=self.model_path.stem)
        if start:
            self.start(startup_timeout)

    def start(self, timeout: float = 60.0) -> None:
        """Start the server process and wait until /v1/models answers."""
        if self.proc is not None:
            return
        if not self.model_path.exists():
            raise RuntimeUnavailable(f"llamacpp: no model file at {self.model_path}; run `python -m helpers export`.")
        from helpers.paths import BUILD

        BUILD.mkdir(parents=True, exist_ok=True)
        self.log_path = BUILD / f"llamacpp-server-{self.port}.log"
        cmd = [sys.executable, "-m", "helpers", "serve", "--model", str(self.model_path), "--host", self.host,
               "--port", str(self.port)]
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         cwd=str(Path(__file__).resolve().parents[2]))
        health = f"http://{self.host}:{self.port}/health"
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-1500:].strip() or "(the log is empty)"
                self.proc = None
                raise RuntimeUnavailable(f"llamacpp: the server exited at start-up:\n{tail}")
            try:  # /health needs no key: 503 while the model loads, 200 when ready
                with urllib.request.urlopen(health, timeout=1.0) as resp:  # noqa: S310 - our own 127.0.0.1 server
                    ready = resp.status == 200
            except (OSError, ValueError):
                ready = False
            if ready:
                av = self.availability()
                if av.ok:
                    return
                self.close()
                raise RuntimeUnavailable(f"llamacpp: the server is up but refused /v1/models ({av.detail}); if it "
                                         "asks for an API key, set EDGE_SLM_API_KEY in this process too")
            time.sleep(0.2)
        self.close()
        tail = self.log_path.read_text(errors="replace")[-800:].strip() if self.log_path.exists() else ""
        raise RuntimeUnavailable(f"llamacpp: the server was not ready within {timeout:.0f} s; its log "
                                 f"({self.log_path}): {tail or '(empty)'}")

    def close(self) -> None:
        super().close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def llamacpp_startable() -> Availability:
    """Whether `LlamaCppServerRuntime` can start its server (checked without starting it)."""
    from helpers.runtimes.embedded import default_gguf

    fix = "install the workbook (`pip install -e .`), which brings llama-cpp-python[server]"
    try:
        import importlib.util

        if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("uvicorn") is None:
            return Availability("llamacpp", False, "llama-cpp-python[server] is not installed", fix)
    except ImportError:
        return Availability("llamacpp", False, "llama-cpp-python[server] is not installed", fix)
    path = default_gguf()
    if not path.exists():
        return Availability("llamacpp", False, f"no model file at {path}", "run `python -m helpers export`")
    return Availability("llamacpp", True, "starts the workbook's OpenAI-compatible server on 127.0.0.1 on demand",
                        models=[path.stem])
