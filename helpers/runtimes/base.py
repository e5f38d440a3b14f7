"""One small interface over every local runtime (notebook 00 introduces it, notebook 01 uses it).

A runtime takes OpenAI-style chat messages and tools and returns a `ChatResult` that always says which
runtime and which model answered. Malformed model output (broken JSON, unknown tool, arguments of the
wrong type) comes back as a structured `error` on the result, never as an exception.
"""

from __future__ import annotations

import json
import os
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Sequence


def default_threads() -> int:
    """CPU threads for in-process llama.cpp: EDGEAI_THREADS, default 1 (`doctor` prints it).

    A robustness choice for 2-core machines: on an idle one a second thread makes the workbook's model about
    25 % faster per request, but when another process keeps a core busy, two threads wait on each other and
    each request gets slower than with one (README, section Runtimes, has the measured figures).
    """
    return max(1, int(os.environ.get("EDGEAI_THREADS", "1")))


class RuntimeUnavailable(RuntimeError):
    """A runtime was asked for but cannot be used; the message says how to start or install it."""


class CapabilityUnavailable(NotImplementedError):
    """The runtime answers chats but lacks an optional capability (token ids, logits); the message says which
    runtime has it."""


# The optional capabilities a runtime may add to chat; `Runtime.capabilities` lists those it has.
CAPABILITIES = ("tokenize", "prompt_tokens", "bos_token_id", "next_token_logits", "logits")


@dataclass
class Availability:
    """Whether a runtime can answer now, what it serves, and what to do if it cannot."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    models: list[str] = field(default_factory=list)


@dataclass
class ToolCall:
    """One tool call, OpenAI style, with arguments already decoded from JSON."""

    id: str
    name: str
    arguments: dict[str, Any]

    def openai(self) -> dict[str, Any]:
        """The `tool_calls` entry of an assistant message."""
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": json.dumps(self.arguments, ensure_ascii=False,
                                                                          separators=(",", ":"))}}


@dataclass
class ChatResult:
    """A model's answer: text or tool calls, plus who answered, timings and token counts."""

    runtime: str
    model: str
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    error: dict[str, str] | None = None
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    total_s: float = 0.0
    raw: str | None = None

    @property
    def answered_by(self) -> str:
        """`runtime/model`, printed by every notebook cell that calls a model."""
        return f"{self.runtime}/{self.model}"

    def message(self) -> dict[str, Any]:
        """This answer as an assistant message to append to the conversation."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = [c.openai() for c in self.tool_calls]
        return msg

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for JSON reports)."""
        return asdict(self)


@dataclass
class StreamEvent:
    """A streamed piece: a text delta, or (last) the complete result."""

    delta: str = ""
    result: ChatResult | None = None


class Runtime(ABC):
    """What every runtime offers: availability, models, chat and streaming chat."""

    name: str = "runtime"

    @abstractmethod
    def availability(self) -> Availability:
        """Check, cheaply and without side effects, whether this runtime can answer now."""

    @property
    @abstractmethod
    def model(self) -> str:
        """The model this runtime answers with."""

    @abstractmethod
    def chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
             temperature: float = 0.0, max_tokens: int = 256, seed: int = 123) -> ChatResult:
        """One chat completion; `temperature=0` is greedy decoding."""

    def stream(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
               temperature: float = 0.0, max_tokens: int = 256, seed: int = 123) -> Iterator[StreamEvent]:
        """Streamed chat: text deltas as they come, then the full result (default: one piece)."""
        result = self.chat(messages, tools, temperature=temperature, max_tokens=max_tokens, seed=seed)
        yield StreamEvent(delta=result.content)
        yield StreamEvent(result=result)

    # ------------------------------------------------------------------ optional capabilities (notebooks 04, 09)
    capabilities: frozenset[str] = frozenset()  # the names from CAPABILITIES this runtime implements

    def supports(self, capability: str) -> bool:
        """Whether this runtime has the optional `capability` (one of CAPABILITIES)."""
        if capability not in CAPABILITIES:
            raise ValueError(f"Unknown capability {capability!r}; the optional ones are {', '.join(CAPABILITIES)}.")
        return capability in self.capabilities

    def _lacks(self, capability: str) -> CapabilityUnavailable:
        return CapabilityUnavailable(
            f"The {self.name} runtime does not give {capability.replace('_', ' ')}: it answers chats only. Use the "
            "embedded runtime (get_runtime('embedded', model=path_to_gguf)), which runs the model in this process, "
            f"or check runtime.supports({capability!r}) first.")

    def load(self) -> None:
        """Load the model now rather than at the first request (default: nothing to load)."""

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text`, chat markers read as special tokens, no BOS added (optional)."""
        raise self._lacks("tokenize")

    def prompt_tokens(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> list[int]:
        """Token ids of the prompt this runtime's chat would feed the model, generation prompt included (optional)."""
        raise self._lacks("prompt_tokens")

    def bos_token_id(self) -> int:
        """The model's beginning-of-sequence token id (optional)."""
        raise self._lacks("bos_token_id")

    def next_token_logits(self, tokens: Sequence[int]) -> Any:
        """Logits [vocab] of the token after `tokens` (optional; a numpy array). A call that extends the previous
        call's tokens evaluates only the new ones."""
        raise self._lacks("next_token_logits")

    def logits(self, tokens: Sequence[int]) -> Any:
        """Logits [len(tokens), vocab] after each position of `tokens`, from an empty context (optional; numpy)."""
        raise self._lacks("logits")

    def close(self) -> None:
        """Release what the runtime holds (servers it started, loaded models)."""

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}/{self.model}>"


def validate_call(call: ToolCall, tools: list[dict[str, Any]] | None) -> dict[str, str] | None:
    """Check a call against the offered tools' JSON schemas; a structured error or None."""
    if not tools:
        return {"type": "unknown_tool", "message": f"model called {call.name!r} but no tools were offered"}
    by_name = {t.get("function", t).get("name"): t.get("function", t) for t in tools}
    if call.name not in by_name:
        return {"type": "unknown_tool", "message": f"model called unknown tool {call.name!r}; "
                                                   f"offered: {sorted(by_name)}"}
    schema = by_name[call.name].get("parameters") or {"type": "object"}
    from helpers.domain.tools import jsonschema_module

    jsonschema = jsonschema_module()
    try:
        jsonschema.validate(call.arguments, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "arguments"
        return {"type": "bad_arguments", "message": f"{call.name}: {where}: {exc.message}"}
    return None


class Timer:
    """Wall-clock timer for time-to-first-token and total time."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.first: float | None = None

    def mark_first(self) -> None:
        if self.first is None:
            self.first = time.perf_counter() - self.t0

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0
