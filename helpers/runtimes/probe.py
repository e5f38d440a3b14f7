"""The concurrency probe (notebook 11): N requests sent at once to an OpenAI-compatible server, each compared
with the answer the same server gives it alone, at temperature 0.

A server that serves concurrent requests correctly returns the same text as sequentially. The probe counts
what went wrong, per request: `lost` (no text at all), `cut` (a strict prefix of the sequential answer),
`different` (other text), and `error` (an HTTP error or a broken connection). It talks raw HTTP (httpx) so
that it sees exactly what a client sees, including a stream that ends with no finish reason.

`StockServer` starts llama-cpp-python's own server (`llama_cpp.server`) with the workbook's chat handler and
its `interrupt_requests` setting chosen by the caller, so the probe can show what that setting does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from helpers.runtimes.wire import stop_process

OUTCOMES = ("identical", "cut", "lost", "different", "error")


@dataclass
class Answer:
    """What one request got back."""

    text: str = ""
    finish_reason: str | None = None
    chunks: int = 0
    error: str | None = None
    seconds: float = 0.0


@dataclass
class ProbeReport:
    """Counts of outcomes over every concurrent request, plus the rows behind them."""

    server: str
    concurrency: int
    rounds: int
    stream: bool
    counts: dict[str, int] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def bad(self) -> int:
        """Requests whose answer differs from the sequential one (lost, cut, different or error)."""
        return self.total - self.counts.get("identical", 0)

    def line(self) -> str:
        parts = ", ".join(f"{k} {self.counts.get(k, 0)}" for k in OUTCOMES)
        return (f"{self.server}: {self.total} {'streaming' if self.stream else 'non-streaming'} requests "
                f"({self.rounds} x {self.concurrency} at once): {parts}")


def ask(base_url: str, model: str, prompt: str, *, stream: bool = True, max_tokens: int = 48,
        api_key: str | None = None, timeout: float = 120.0, client=None) -> Answer:
    """One chat request at temperature 0; streaming answers are assembled from the server-sent events."""
    import httpx

    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "temperature": 0.0, "seed": 123,
            "max_tokens": max_tokens, "stream": stream}
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    own = client is None
    client = client or httpx.Client(timeout=timeout)
    ans = Answer()
    t0 = time.perf_counter()
    try:
        url = base_url.rstrip("/") + "/chat/completions"
        if not stream:
            r = client.post(url, json=body, headers=headers)
            if r.status_code != 200:
                ans.error = f"HTTP {r.status_code}: {r.text[:160]}"
            else:
                choice = r.json()["choices"][0]
                ans.text, ans.finish_reason, ans.chunks = choice["message"].get("content") or "", \
                    choice.get("finish_reason"), 1
        else:
            with client.stream("POST", url, json=body, headers=headers) as r:
                if r.status_code != 200:
                    ans.error = f"HTTP {r.status_code}: {r.read().decode('utf-8', 'replace')[:160]}"
                else:
                    for line in r.iter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            break
                        ev = json.loads(data)
                        if ev.get("error"):
                            ans.error = str(ev["error"])[:160]
                            break
                        for ch in ev.get("choices") or []:
                            ans.chunks += 1
                            ans.text += (ch.get("delta") or {}).get("content") or ""
                            ans.finish_reason = ch.get("finish_reason") or ans.finish_reason
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        ans.error = f"{type(exc).__name__}: {exc}"[:160]
    finally:
        if own:
            client.close()
    ans.seconds = time.perf_counter() - t0
    return ans


def classify(got: Answer, reference: Answer) -> str:
    """`identical`, `cut`, `lost`, `different` or `error` for one concurrent answer against its sequential one."""
    if got.error:
        return "error"
    if got.text == reference.text and got.finish_reason == reference.finish_reason:
        return "identical"
    if not got.text:
        return "lost"
    if reference.text.startswith(got.text):
        return "cut"
    return "different"


def concurrency_probe(base_url: str, model: str, prompts: list[str], *, concurrency: int = 4, rounds: int = 2,
                      stream: bool = True, max_tokens: int = 48, api_key: str | None = None,
                      server: str = "server", timeout: float = 120.0) -> ProbeReport:
    """Answer each prompt alone (the reference), then `rounds` times send `concurrency` of them at once."""
    if concurrency < 1 or rounds < 1 or not prompts:
        raise ValueError("concurrency and rounds must be at least 1, and prompts must not be empty")
    picks = [prompts[i % len(prompts)] for i in range(concurrency)]
    reference = {p: ask(base_url, model, p, stream=stream, max_tokens=max_tokens, api_key=api_key, timeout=timeout)
                 for p in dict.fromkeys(picks)}
    bad_ref = {p: a.error for p, a in reference.items() if a.error or not a.text}
    if bad_ref:
        raise RuntimeError(f"{server}: the sequential reference answers failed, so nothing can be compared: {bad_ref}")
    report = ProbeReport(server, concurrency, rounds, stream, counts={k: 0 for k in OUTCOMES})
    for rnd in range(rounds):
        answers: list[Answer | None] = [None] * concurrency
        barrier = threading.Barrier(concurrency)

        def worker(i: int, barrier: threading.Barrier = barrier, answers: list = answers) -> None:
            barrier.wait()
            answers[i] = ask(base_url, model, picks[i], stream=stream, max_tokens=max_tokens, api_key=api_key,
                             timeout=timeout)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, got in enumerate(answers):
            ref = reference[picks[i]]
            outcome = classify(got, ref)
            report.counts[outcome] += 1
            report.rows.append({"round": rnd, "request": i, "prompt": picks[i], "outcome": outcome,
                                "text": got.text, "finish_reason": got.finish_reason, "chunks": got.chunks,
                                "error": got.error, "seconds": round(got.seconds, 3),
                                "sequential_text": ref.text, "sequential_finish": ref.finish_reason})
    return report


def serve_stock(model: str, port: int, interrupt_requests: bool, n_threads: int = 1) -> None:
    """Run llama-cpp-python's stock server with the workbook's chat handler (what `StockServer` launches)."""
    import uvicorn
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    from helpers.runtimes.server import HANDLER_NAME, register_handler

    register_handler()
    settings = ModelSettings(model=model, model_alias=Path(model).stem, chat_format=HANDLER_NAME, n_ctx=2048,
                             n_threads=n_threads, n_threads_batch=n_threads, verbose=False)
    app = create_app(server_settings=ServerSettings(host="127.0.0.1", port=port,
                                                    interrupt_requests=interrupt_requests),
                     model_settings=[settings])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


class StockServer:
    """llama-cpp-python's server (`llama_cpp.server`) on 127.0.0.1 with a chosen `interrupt_requests`."""

    def __init__(self, model_path: str | Path, interrupt_requests: bool = True, port: int | None = None,
                 threads: int = 1, startup_timeout: float = 60.0, wait: bool = True) -> None:
        from helpers.runtimes.wire import free_port

        self.model_path = Path(model_path)
        self.interrupt_requests = interrupt_requests
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.model = self.model_path.stem
        self.name = f"llama_cpp.server interrupt_requests={interrupt_requests}"
        if not self.model_path.is_file():
            raise FileNotFoundError(f"No model file at {self.model_path}: run `python -m helpers export`.")
        code = (f"from helpers.runtimes.probe import serve_stock; serve_stock({str(self.model_path)!r}, {self.port}, "
                f"{interrupt_requests!r}, {threads})")
        from helpers.paths import BUILD, ROOT
        from helpers.runtimes.llama_server import orphan_guard

        BUILD.mkdir(parents=True, exist_ok=True)
        self.log_path = BUILD / f"stock-server-{self.port}.log"
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=str(ROOT),
                                         preexec_fn=orphan_guard())  # noqa: PLW1509
        self.startup_timeout = startup_timeout
        if wait:
            self.wait()

    def wait(self) -> None:
        """Wait until /v1/models answers (start several servers with wait=False, then wait for each)."""
        from helpers.runtimes.llama_server import http_status

        deadline = time.time() + self.startup_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up: {self.log_path.read_text()[-800:]}")
            if http_status(self.base_url + "/models", timeout=1.0)[0] == 200:
                return
            time.sleep(0.1)
        self.close()
        raise RuntimeError(f"{self.name} did not answer within {self.startup_timeout:.0f} s; see {self.log_path}")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_process(self.proc)

    def __del__(self) -> None:
        import contextlib

        with contextlib.suppress(OSError, AttributeError):
            self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
