"""Runtimes that speak the OpenAI chat API: a vLLM server, any OpenAI-compatible endpoint, and the
workbook's own llama.cpp server (started by `LlamaCppServerRuntime` on 127.0.0.1).

Introduced in notebook 01; the vLLM and Ollama notebooks use the same client code against whatever
server a learner has, and against the workbook's own server when they have none.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

from helpers.registry import default_gguf
from helpers.runtimes.base import Availability, ChatResult, Runtime, RuntimeUnavailable, StreamEvent, Timer
# the wire helpers live in helpers.runtimes.wire; imported here too so `openai_compat.decode_calls` keeps working
from helpers.runtimes.wire import (call_text_error, decode_calls, free_port, http_get_json,  # noqa: F401
                                   openai_wire_messages, result_from_chunks, status_error, stop_process,
                                   stream_events)


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
        wire = openai_wire_messages(messages)
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

    proc = None  # the server process a subclass started (llamacpp, llamaserver, ortgenai-service); None otherwise

    def close(self) -> None:
        """Close the client and stop the server process this runtime started, if any."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def __del__(self) -> None:
        try:  # at interpreter shutdown even an import can fail: a finaliser must never raise
            self.close()
        except Exception:  # noqa: BLE001
            pass


class VLLMRuntime(OpenAICompatRuntime):
    """A vLLM server a learner runs (`vllm serve MODEL`), at VLLM_BASE_URL or 127.0.0.1:8000."""

    name = "vllm"
    env_url = "VLLM_BASE_URL"
    env_key = "VLLM_API_KEY"
    default_url = "http://127.0.0.1:8000/v1"
    how_to_start = ("start vLLM on a machine with a GPU: `vllm serve <model> --host 127.0.0.1 --port 8000 "
                    "--enable-auto-tool-choice --tool-call-parser <parser>`, or set VLLM_BASE_URL")


class LlamaCppServerRuntime(OpenAICompatRuntime):
    """The workbook's OpenAI-compatible llama.cpp server, started on 127.0.0.1 and stopped by this object."""

    name = "llamacpp"
    env_url = "EDGEAI_LLAMACPP_URL"
    env_key = "EDGE_SLM_API_KEY"  # the server it starts reads the same variable (helpers.runtimes.server.API_KEY_ENV)
    how_to_start = "it starts by itself; if it fails, run `python -m helpers serve` to see the error"

    def __init__(self, model_path: str | Path | None = None, port: int | None = None, host: str = "127.0.0.1",
                 start: bool = True, startup_timeout: float = 60.0) -> None:
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



def llamacpp_startable() -> Availability:
    """Whether `LlamaCppServerRuntime` can start its server (checked without starting it)."""
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
