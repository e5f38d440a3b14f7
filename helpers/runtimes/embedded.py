"""The `embedded` runtime: the workbook's own SLM in-process on llama.cpp (always available).

Introduced in notebook 01. It loads the shipped GGUF file from data/gguf (f16 by default, or any
quantized file from the quantization notebooks) and answers through the same interface as every other runtime.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

from helpers.registry import default_gguf
from helpers.runtimes.base import Availability, ChatResult, Runtime, StreamEvent, Timer, default_threads
from helpers.runtimes.wire import decode_calls, stream_events


class EmbeddedRuntime(Runtime):
    """In-process llama.cpp on the workbook model; `constrained="schema"` or `"extractive"` adds grammar-
    constrained decoding (see helpers.runtimes.constrained), None is plain decoding.

    It has every optional capability of the interface (token ids, next-token logits, logits of every position:
    notebooks 04 and 09 use them). `n_batch`, `n_ubatch` and `logits_all` go to `llama_cpp.Llama` as they are
    (`logits_all=True` is what `logits()` needs)."""

    name = "embedded"
    capabilities = frozenset({"tokenize", "prompt_tokens", "bos_token_id", "next_token_logits", "logits"})

    def __init__(self, model_path: str | Path | None = None, n_threads: int | None = None, n_ctx: int = 2048,
                 constrained: str | None = None, n_batch: int = 512, n_ubatch: int | None = None,
                 logits_all: bool = False) -> None:
        self.model_path = Path(model_path) if model_path else default_gguf()
        self.n_threads = n_threads or default_threads()
        self.n_ctx = n_ctx
        self.constrained = constrained
        self.n_batch, self.n_ubatch, self.logits_all = n_batch, n_ubatch, logits_all
        self._llama = None
        self._scored: list[int] = []  # the tokens next_token_logits last evaluated (its KV cache holds them)
        # one llama.cpp context decodes one sequence at a time: two threads in it at once abort the process
        # (GGML_ASSERT, found by the contract suite), so calls from threads take turns
        self._lock = threading.RLock()

    @property
    def model(self) -> str:
        return self.model_path.stem + (f"+{self.constrained}" if self.constrained else "")

    def availability(self) -> Availability:
        if not self.model_path.exists():
            return Availability(self.name, False, f"model file {self.model_path} is missing",
                                "restore data/ from git (`git checkout -- data`) or run `python -m helpers export`")
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            return Availability(self.name, False, "llama-cpp-python is not installed",
                                "install the workbook: `pip install -e .` (see README)")
        from helpers.registry import sha256_cached as sha256

        size_mb = self.model_path.stat().st_size / 1e6
        return Availability(self.name, True, f"in-process llama.cpp, {self.model_path.name} ({size_mb:.1f} MB, "
                                             f"sha256 {sha256(self.model_path)[:12]})", models=[self.model])

    @property
    def llama(self):  # -> llama_cpp.Llama
        """The loaded llama.cpp model (loaded on first use)."""
        if self._llama is None:
            av = self.availability()
            if not av.ok:
                from helpers.runtimes.base import RuntimeUnavailable

                raise RuntimeUnavailable(f"embedded runtime: {av.detail}; {av.fix}")
            import llama_cpp

            extra: dict[str, Any] = {"n_ubatch": self.n_ubatch} if self.n_ubatch else {}
            if self.logits_all:
                extra["logits_all"] = True
            self._llama = llama_cpp.Llama(model_path=str(self.model_path), n_ctx=self.n_ctx,
                                          n_threads=self.n_threads, n_threads_batch=self.n_threads,
                                          n_batch=self.n_batch, verbose=False, seed=123, **extra)
        return self._llama

    # ------------------------------------------------------------------ optional capabilities
    def load(self) -> None:
        _ = self.llama  # loads the model

    def tokenize(self, text: str) -> list[int]:
        return self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def prompt_tokens(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> list[int]:
        from helpers.domain.chat_format import render
        from helpers.runtimes.wire import normalize_messages

        return self.tokenize(render(normalize_messages(messages), tools, add_generation_prompt=True))

    def bos_token_id(self) -> int:
        return int(self.llama.token_bos())

    def next_token_logits(self, tokens: Sequence[int]) -> Any:
        import llama_cpp
        import numpy as np

        tokens = [int(t) for t in tokens]
        if not tokens:
            raise ValueError("next_token_logits needs at least one token id.")
        with self._lock:
            llm, n = self.llama, len(self._scored)
            if 0 < n < len(tokens) and tokens[:n] == self._scored:
                llm.eval(tokens[n:])  # the KV cache holds the previous call's tokens: evaluate only the new ones
            else:
                llm.reset()
                llm.eval(tokens)
            self._scored = tokens
            return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),)).copy()

    def _forget_scored(self) -> None:
        """Before a chat: a KV cache left by next_token_logits is cleared, so a chat's prompt is evaluated as if
        nothing had been scored (the same numbers whether or not a router looked at the logits first)."""
        if self._scored:
            self._scored = []
            self.llama.reset()

    def logits(self, tokens: Sequence[int]) -> Any:
        import numpy as np

        if not self.logits_all:
            raise ValueError("logits() of every position needs the model loaded with logits_all=True: "
                             "get_runtime('embedded', model=path, logits_all=True).")
        with self._lock:
            llm = self.llama
            self._scored = []
            llm.reset()
            llm.eval([int(t) for t in tokens])
            return np.array(llm.scores[:len(tokens)])

    def _grammar(self, tools: list[dict[str, Any]] | None, messages: list[dict[str, Any]]):
        if not self.constrained:
            return None
        from helpers.runtimes.constrained import reply_grammar

        return reply_grammar(tools, messages, mode=self.constrained)

    def chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
             temperature: float = 0.0, max_tokens: int = 256, seed: int = 123) -> ChatResult:
        from helpers.runtimes.llama_chat import chat_completion

        timer = Timer()
        with self._lock:
            self._forget_scored()
            out = chat_completion(self.llama, messages, tools, temperature=temperature, max_tokens=max_tokens,
                                  seed=seed, model=self.model, grammar=self._grammar(tools, messages))
        return self._result(out, timer, tools)

    def _result(self, out: dict[str, Any], timer: Timer, tools: list[dict[str, Any]] | None) -> ChatResult:
        msg = out["choices"][0]["message"]
        calls, err = decode_calls(msg.get("tool_calls") or [], tools)
        res = ChatResult(runtime=self.name, model=self.model, content=msg.get("content") or "", tool_calls=calls,
                         error=out.get("x_error") or err, finish_reason=out["choices"][0]["finish_reason"],
                         prompt_tokens=out["usage"]["prompt_tokens"],
                         completion_tokens=out["usage"]["completion_tokens"], total_s=timer.elapsed,
                         raw=out.get("x_raw"))
        return res

    def stream(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
               temperature: float = 0.0, max_tokens: int = 256, seed: int = 123) -> Iterator[StreamEvent]:
        from helpers.runtimes.llama_chat import chat_completion_stream

        timer = Timer()
        with self._lock:  # held until the stream ends or the caller closes it
            self._forget_scored()
            chunks = chat_completion_stream(self.llama, messages, tools, temperature=temperature,
                                            max_tokens=max_tokens, seed=seed, model=self.model,
                                            grammar=self._grammar(tools, messages))
            yield from stream_events(chunks, self.name, self.model, tools, timer)

    def close(self) -> None:
        with self._lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None
            self._scored = []


__all__ = ["EmbeddedRuntime", "default_gguf", "time_to_first_token"]


_TTFT_SCRIPT = """
import time
t0 = time.perf_counter()
import helpers
from helpers.runtimes import get_runtime
rt = get_runtime("embedded")
for ev in rt.stream([{"role": "user", "content": "hello"}]):
    if ev.delta:
        print(time.perf_counter() - t0)
        break
"""


def time_to_first_token(runs: int = 3) -> list[float]:
    """Seconds from `import helpers` to the first generated token, each in a fresh Python process."""
    import subprocess
    import sys

    from helpers.paths import ROOT

    out = []
    for _ in range(runs):
        res = subprocess.run([sys.executable, "-c", _TTFT_SCRIPT], capture_output=True, text=True, cwd=str(ROOT),
                             timeout=120)
        if res.returncode != 0:
            raise RuntimeError(f"time-to-first-token run failed:\n{res.stderr[-1500:]}")
        out.append(float(res.stdout.strip().splitlines()[-1]))
    return out
