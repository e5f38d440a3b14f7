"""The `llamaserver` runtime: llama.cpp's own C++ server (`llama-server`) on the workbook's GGUF (notebook 11).

`LlamaServerRuntime` starts the binary that `helpers.runtimes.llama_build` built, on 127.0.0.1 and a free
port, polls `/health` through loading (503 while the model loads, 200 when ready), and stops it on
`close()`. Chat goes through the OpenAI client of `OpenAICompatRuntime`. Options it exposes: `--parallel`
slots (continuous batching), `--metrics` (Prometheus text at /metrics), `--api-key`.

Tool calls: llama-server turns tool-call text into OpenAI `tool_calls` only for the chat formats its parser
knows (common/chat.cpp). `tool_call_support()` asks it once, live, whether it does for this model; when it
does not, a chat with tools answers with a structured error "tool calls are not offered on this runtime"
and keeps llama-server's text in `content` and `raw`, so nothing is hidden.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from helpers.runtimes.base import Availability, ChatResult, RuntimeUnavailable, StreamEvent
from helpers.runtimes.openai_compat import OpenAICompatRuntime
from helpers.runtimes.wire import free_port

TOOLS_NOT_OFFERED = "tool calls are not offered on this runtime"


def http_status(url: str, api_key: str | None = None, timeout: float = 2.0, method: str = "GET",
                body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """(HTTP status, body text) of one request; status 0 when nothing answers."""
    hdrs = dict(headers or {})
    if api_key:
        hdrs["Authorization"] = f"Bearer {api_key}"
    if body is not None:
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=body, headers=hdrs, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return 0, ""


def _die_with_parent() -> None:  # pragma: no cover (runs in the child between fork and exec)
    """Linux: the server gets SIGTERM when the process that started it dies, even by SIGKILL (a killed kernel)."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def orphan_guard():
    """`preexec_fn` for a server process: tie it to this process on Linux when started from the main thread (the
    signal follows the starting thread, and a worker thread may end long before the process)."""
    import sys
    import threading

    if sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread():
        return _die_with_parent
    return None


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class LlamaServerRuntime(OpenAICompatRuntime):
    """llama.cpp's `llama-server` on the workbook's GGUF, started on 127.0.0.1 and stopped by this object."""

    name = "llamaserver"
    env_url = "EDGEAI_LLAMASERVER_URL"
    env_key = None
    how_to_start = "it starts by itself once built: run `python -m helpers build-llama-server` first"

    def __init__(self, model_path: str | Path | None = None, port: int | None = None, host: str = "127.0.0.1",
                 parallel: int = 2, ctx_per_slot: int = 1024, threads: int | None = None,
                 api_key: str | None = None, metrics: bool = True, extra_args: tuple[str, ...] = (),
                 start: bool = True, startup_timeout: float = 60.0) -> None:
        from helpers.runtimes.base import default_threads
        from helpers.registry import default_gguf

        self.model_path = Path(model_path) if model_path else default_gguf()
        self.host, self.port = host, port or free_port()
        self.parallel, self.ctx_per_slot = parallel, ctx_per_slot
        self.threads = threads or default_threads()
        self.metrics, self.extra_args = metrics, tuple(extra_args)
        self.server_key = api_key
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self.health_log: list[tuple[float, int]] = []  # (seconds since start, /health status) while loading
        self.ready_s: float | None = None
        self._tool_support: bool | None = None
        super().__init__(base_url=f"http://{host}:{self.port}/v1", model=self.model_path.stem,
                         api_key=api_key or "no-key")
        if start:
            self.start(startup_timeout)

    @property
    def root(self) -> str:
        """The server's address without /v1 (where /health, /metrics, /slots live)."""
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        """The llama-server command line this runtime runs."""
        from helpers.runtimes.llama_build import find_binaries

        found = find_binaries()
        if found is None:
            raise RuntimeUnavailable("llamaserver: llama-server is not built yet; run `python -m helpers "
                                     "build-llama-server` (about 10 minutes once, needs cmake, ninja and a C++ "
                                     "compiler), or use the embedded runtime.")
        cmd = [str(found.server), "--model", str(self.model_path), "--alias", self.model_path.stem,
               "--host", self.host, "--port", str(self.port), "--parallel", str(self.parallel),
               "--ctx-size", str(self.ctx_per_slot * self.parallel), "--threads", str(self.threads),
               # HTTP threads mostly wait on the slots; with too few, a GET /health or /slots queues behind
               # the running generations (measured: 2 threads and 2 busy slots left /slots unanswered)
               "--threads-http", str(max(8, 2 * self.parallel + 2)), "--jinja", "--no-webui"]
        if self.metrics:
            cmd.append("--metrics")
        if self.server_key:
            cmd += ["--api-key", self.server_key]
        return cmd + list(self.extra_args)

    def start(self, timeout: float = 60.0) -> None:
        """Start llama-server and poll /health every 20 ms until it answers 200 (recording 503s meanwhile)."""
        if self.proc is not None:
            return
        if not self.model_path.is_file():
            raise RuntimeUnavailable(f"llamaserver: no model file at {self.model_path}; pass a GGUF path, or run "
                                     "`python -m helpers export` to rebuild the shipped ones.")
        cmd = self.command()
        if self.host in ("127.0.0.1", "localhost") and not port_is_free(self.port, self.host):
            raise RuntimeUnavailable(f"llamaserver: port {self.port} on {self.host} is already in use; pass "
                                     "another port, or port=None to take a free one.")
        from helpers.paths import BUILD

        BUILD.mkdir(parents=True, exist_ok=True)
        self.log_path = BUILD / f"llama-server-{self.port}.log"
        t0 = time.perf_counter()
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         preexec_fn=orphan_guard())  # noqa: PLW1509 (no threads are forked)
        self.health_log = []
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise RuntimeUnavailable(f"llamaserver: llama-server exited at start-up (code {code}): "
                                         f"{self._log_reason()} (full log: {self.log_path})")
            status, _ = http_status(self.root + "/health", timeout=1.0)
            if status and (not self.health_log or self.health_log[-1][1] != status):
                self.health_log.append((time.perf_counter() - t0, status))
            if status == 200:
                self.ready_s = time.perf_counter() - t0
                return
            time.sleep(0.02)
        self.close()
        raise RuntimeUnavailable(f"llamaserver: /health did not answer 200 within {timeout:.0f} s; see {self.log_path}")

    def _log_reason(self) -> str:
        """The most telling lines of the server log (errors first)."""
        lines = self.log_path.read_text(errors="replace").splitlines() if self.log_path else []
        bad = [ln.strip() for ln in lines if any(w in ln.lower() for w in ("error", "failed", "invalid", "couldn"))]
        return " | ".join((bad or lines)[-4:])[-800:]

    def availability(self) -> Availability:
        from helpers.runtimes.llama_build import find_binaries

        if self.proc is None or self.proc.poll() is not None:
            if find_binaries() is None:
                return Availability(self.name, False, "llama-server is not built",
                                    "run `python -m helpers build-llama-server`")
            return Availability(self.name, False, "llama-server is not running", "call start()")
        status, body = http_status(self.root + "/health", timeout=1.5)
        if status != 200:
            return Availability(self.name, False, f"/health answered {status}: {body[:120]}", "wait, or see the log")
        return Availability(self.name, True, f"llama-server at {self.root} (pid {self.proc.pid})",
                            models=[self.model_path.stem])

    # --- tool calls -------------------------------------------------------------------------------------
    def tool_call_support(self) -> bool:
        """Whether llama-server returns OpenAI `tool_calls` for this model: asked once, live, with a request the
        model answers with a tool call in process (`lookup_order` on an order number)."""
        if self._tool_support is None:
            from helpers.domain.tools import openai_tools

            res = super().chat([{"role": "user", "content": "where is my order 48213?"}], openai_tools(),
                               temperature=0.0, max_tokens=64)
            self._tool_support = bool(res.tool_calls)
        return self._tool_support

    def _not_offered(self, res: ChatResult) -> ChatResult:
        res.raw = res.content
        res.error = {"type": "tools_not_offered",
                     "message": f"{TOOLS_NOT_OFFERED}: llama-server {self.model_path.name} answered text, not "
                                "OpenAI tool_calls (its chat parser does not know this model's tool-call format); "
                                "use the embedded runtime or `python -m helpers serve` for tool calls"}
        return res

    def chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
             temperature: float = 0.0, max_tokens: int = 256, seed: int = 123) -> ChatResult:
        res = super().chat(messages, tools, temperature=temperature, max_tokens=max_tokens, seed=seed)
        if tools and not res.tool_calls and not self.tool_call_support():
            return self._not_offered(res)
        return res

    def stream(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
               temperature: float = 0.0, max_tokens: int = 256, seed: int = 123) -> Iterator[StreamEvent]:
        for ev in super().stream(messages, tools, temperature=temperature, max_tokens=max_tokens, seed=seed):
            if ev.result is not None and tools and not ev.result.tool_calls and not self.tool_call_support():
                ev = StreamEvent(result=self._not_offered(ev.result))
            yield ev

    # --- server views -----------------------------------------------------------------------------------
    def get_json(self, path: str) -> Any:
        """GET a JSON route of the server (with the API key when one is set)."""
        status, body = http_status(self.root + path, api_key=self.server_key)
        if status != 200:
            raise RuntimeUnavailable(f"llamaserver: GET {path} answered {status}: {body[:200]}")
        return json.loads(body)

    def metrics_text(self) -> str:
        """The Prometheus text at /metrics (needs metrics=True)."""
        status, body = http_status(self.root + "/metrics", api_key=self.server_key)
        if status != 200:
            raise RuntimeUnavailable(f"llamaserver: /metrics answered {status}: {body[:200]} (start with metrics=True)")
        return body



def parse_metrics(text: str) -> dict[str, float]:
    """`{sample name: value}` of a Prometheus text scrape, read with prometheus-client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[s.name] = s.value
    return out


def llamaserver_startable() -> Availability:
    """Whether `LlamaServerRuntime` can start (checked without starting it)."""
    from helpers.registry import default_gguf
    from helpers.runtimes.llama_build import find_binaries, missing_build_tools

    found = find_binaries()
    if found is None:
        missing = missing_build_tools()
        fix = ("run `python -m helpers build-llama-server` (about 10 minutes once)" if not missing else
               f"install {', '.join(missing)}, then run `python -m helpers build-llama-server`")
        return Availability("llamaserver", False, "llama-server is not built", fix)
    path = default_gguf()
    if not path.exists():
        return Availability("llamaserver", False, f"no model file at {path}", "run `python -m helpers export`")
    return Availability("llamaserver", True, f"starts {found.server} on 127.0.0.1 on demand", models=[path.stem])
