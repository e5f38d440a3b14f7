"""The agent loop: the model proposes a tool call, the helpers check it, run the tool, feed the result
back, and the model answers (notebook 03; notebooks 04-07 build on it).

One turn of `Agent.run(user_message)`:

1. check the input (text, not empty, not too long; then `guard.check_input`);
2. ask the model, offering the toolbox's schemas;
3. a broken call (bad JSON, unknown tool, arguments that fail the schema) is NOT run: a structured error
   goes back to the model as a tool message and the model gets `max_retries` more tries, then the turn
   fails with a clear message;
4. a valid call passes `guard.check_call` (a refusal goes back to the model, audited), runs, its result
   passes `guard.check_tool_result` and goes back to the model;
5. text without a call is the answer (after `guard.check_output`); at most `max_steps` model calls.

`run` never raises for model, tool or runtime failures: it returns `ok=False` with an error that says
what happened and what to do. `ok` is also False when a tool failed (raised, timed out, returned something
that is not data), when the answer is empty, or when it was cut (the `max_tokens` limit, a stream that
ended early). `Agent.messages` only grows when a turn succeeds, so a failed turn leaves the conversation
as it was. Error text the loop feeds back to the model is data, never instructions: a later call whose
arguments copy it (say, a ticket whose description is the error message) is refused, not run.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from helpers.agents.toolbox import ToolBox, ToolExecutionError, result_text
from helpers.domain.tools import ToolArgumentError
from helpers.domain.chat_format import markup_in

MAX_INPUT_CHARS = 4000  # the workbook model reads 2048 tokens; longer messages cannot fit with tools and history
TOOL_TIMEOUT_S = 30.0
# ChatResult.error types that mean the runtime failed (not the model's call): the turn ends, no retry
RUNTIME_ERRORS = ("server_error", "context_overflow", "stream_failed", "stream_incomplete", "timeout")
MIN_COPIED_CHARS = 12  # an argument this long found inside fed-back error text counts as copied from it


class ToolTimeout(Exception):
    """A tool ran longer than the agent's `tool_timeout`."""


def call_with_timeout(fn: Callable[[], Any], seconds: float | None) -> Any:
    """Run `fn()`; raise ToolTimeout after `seconds` (a SIGALRM timer: in the main thread on POSIX, which is
    where notebooks and the CLI run; elsewhere `fn` runs without a limit rather than in another thread,
    because the shop's SQLite connection belongs to the thread that opened it)."""
    if not seconds or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        return fn()

    def on_alarm(signum: int, frame: Any) -> None:
        raise ToolTimeout(f"no result after {seconds:g} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def copied_error_text(arguments: Any, fed_errors: list[str]) -> str | None:
    """The argument value that copies error text the loop fed back to the model, or None."""
    for v in _strings(arguments):
        low = " ".join(v.lower().split())
        if len(low) < MIN_COPIED_CHARS:
            continue
        for err in fed_errors:
            e = " ".join(err.lower().split())
            if low in e or (len(e) >= MIN_COPIED_CHARS and e in low):
                return v
    return None


@dataclass
class Step:
    """One step of a turn: "model" (a reply), "tool" (a call run or refused), "error" or "guard"."""

    kind: str
    detail: dict[str, Any]


@dataclass
class AgentResult:
    """What one turn produced: the answer or a clear error, every step, who answered, tokens and time."""

    answer: str
    ok: bool
    error: str | None
    steps: list[Step]
    runtime: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    transcript: list[dict[str, Any]] = field(default_factory=list)  # this turn's messages, failed ones too

    @property
    def answered_by(self) -> str:
        """`runtime/model`, printed by every notebook cell that calls a model."""
        return f"{self.runtime}/{self.model}"

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """The calls that ran: name, arguments (as validated) and result."""
        return [{"name": s.detail["name"], "arguments": s.detail["arguments"], "result": s.detail.get("result")}
                for s in self.steps if s.kind == "tool" and s.detail.get("ran")]

    @property
    def n_model_calls(self) -> int:
        """How many times the model was asked."""
        return sum(1 for s in self.steps if s.kind == "model")


@dataclass
class AgentEvent:
    """A streamed event: "delta" (text as it comes), "model", "tool", "error", "guard", or "result" (last)."""

    kind: str
    text: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    result: AgentResult | None = None


class Agent:
    """A single agent: a runtime, a toolbox and the loop above (notebook 03)."""

    def __init__(self, runtime: Any, tools: ToolBox | None = None, *, system: str | None = None,
                 max_steps: int = 4, max_retries: int = 1, guard: Any | None = None, audit: Any | None = None,
                 max_tokens: int = 128, messages: list[dict[str, Any]] | None = None,
                 max_input_chars: int = MAX_INPUT_CHARS, temperature: float = 0.0, seed: int = 123,
                 tool_timeout: float | None = TOOL_TIMEOUT_S) -> None:
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1 (one model call).")
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more.")
        self.runtime = runtime
        self.tools = tools if tools is not None else ToolBox([])
        self.system = system
        self.max_steps = max_steps
        self.max_retries = max_retries
        self.guard = guard
        self.audit = audit
        self.max_tokens = max_tokens
        self.max_input_chars = max_input_chars
        self.temperature = temperature
        self.seed = seed
        self.tool_timeout = tool_timeout
        self.messages: list[dict[str, Any]] = [dict(m) for m in messages] if messages else []

    def reset(self) -> None:
        """Forget the conversation."""
        self.messages = []

    def __repr__(self) -> str:
        return f"<Agent {self._who()} tools={self.tools.names} steps<={self.max_steps}>"

    # ------------------------------------------------------------------ public
    def run(self, user_message: str) -> AgentResult:
        """One turn: the answer, or ok=False with a clear error; never raises for model/tool/runtime failures."""
        result = None
        for ev in self.stream(user_message, _stream=False):
            if ev.kind == "result":
                result = ev.result
        assert result is not None
        return result

    def stream(self, user_message: str, *, _stream: bool = True) -> Iterator[AgentEvent]:
        """The same turn, streamed: text deltas, model/tool/error events, then one "result" event."""
        t0 = time.perf_counter()
        try:
            yield from self._turn(user_message, stream=_stream)
        except Exception as exc:  # noqa: BLE001 - the promise: a fault ends the turn with ok=False, never raises
            name, model = self._who()
            msg = (f"The agent loop hit an unexpected {type(exc).__name__} ({str(exc)[:200]}). The conversation is "
                   f"unchanged ({len(self.messages)} messages); send the message again, and report it if it repeats.")
            step = Step("error", {"type": "internal", "message": msg})
            yield AgentEvent("error", msg, step.detail)
            res = AgentResult(answer="", ok=False, error=msg, steps=[step], runtime=name, model=model,
                              seconds=time.perf_counter() - t0)
            yield AgentEvent("result", detail={"ok": False, "error": msg}, result=res)

    # ------------------------------------------------------------------ the loop
    def _who(self) -> tuple[str, str]:
        name = getattr(self.runtime, "name", type(self.runtime).__name__)
        try:
            model = self.runtime.model
        except Exception:  # a server that is gone cannot say which model it serves
            model = "unknown"
        return name, model

    def _audit(self, event: dict[str, Any]) -> None:
        if self.audit is not None:
            self.audit.record(event)

    def _check_input(self, user_message: Any) -> str | None:
        if not isinstance(user_message, str):
            return (f"The message must be text (str), not {type(user_message).__name__}: "
                    "pass the user's words as a string.")
        if not user_message.strip():
            return "The message is empty: type a request, for example 'where is order 10037?'."
        if len(user_message) > self.max_input_chars:
            return (f"The message is {len(user_message):,} characters; this agent takes at most "
                    f"{self.max_input_chars:,} (the model reads 2,048 tokens in all). Shorten it or send "
                    "the relevant part only.")
        return None

    def _turn(self, user_message: str, stream: bool) -> Iterator[AgentEvent]:
        t0 = time.perf_counter()
        runtime_name, model = self._who()
        steps: list[Step] = []
        tokens = [0, 0]
        convo = [dict(m) for m in self.messages]
        start = len(convo)

        def finish(answer: str, ok: bool, error: str | None) -> AgentEvent:
            if ok:  # only a successful turn changes the conversation
                self.messages = convo
            res = AgentResult(answer=answer, ok=ok, error=error, steps=steps, runtime=runtime_name, model=model,
                              prompt_tokens=tokens[0], completion_tokens=tokens[1],
                              seconds=time.perf_counter() - t0, transcript=convo[start:])
            return AgentEvent("result", text=answer, detail={"ok": ok, "error": error}, result=res)

        problem = self._check_input(user_message)
        if problem:
            steps.append(Step("error", {"type": "bad_input", "message": problem}))
            yield AgentEvent("error", problem, steps[-1].detail)
            yield finish("", False, problem)
            return
        if self.guard is not None:
            reason = self.guard.check_input(user_message)
            if reason:
                steps.append(Step("guard", {"stage": "input", "reason": reason}))
                yield AgentEvent("guard", reason, steps[-1].detail)
                yield finish("", False, f"input refused: {reason}")
                return
        # text that cannot be encoded as UTF-8 (lone surrogates from a bad decode) is replaced, not fatal
        clean = user_message.encode("utf-8", errors="replace").decode("utf-8")
        if clean != user_message:
            steps.append(Step("error", {"type": "bad_text", "message": "characters that are not valid UTF-8 "
                                                                       "were replaced by '?'", "retry": False}))
        convo.append({"role": "user", "content": clean})
        failures = 0
        fed_errors: list[str] = []  # error text the loop wrote into the conversation (data, never arguments)
        tool_failures: list[str] = []
        for _ in range(self.max_steps):
            # ---- ask the model
            sent = ([{"role": "system", "content": self.system}] if self.system else []) + convo
            try:
                res = None
                if stream:
                    for ev in self.runtime.stream(sent, self.tools.schemas or None, temperature=self.temperature,
                                                  max_tokens=self.max_tokens, seed=self.seed):
                        if ev.result is not None:
                            res = ev.result
                        elif ev.delta:
                            yield AgentEvent("delta", ev.delta)
                    if res is None:
                        raise RuntimeError("the stream ended without a final result")
                else:
                    res = self.runtime.chat(sent, self.tools.schemas or None, temperature=self.temperature,
                                            max_tokens=self.max_tokens, seed=self.seed)
            except Exception as exc:  # connection lost, server gone, context overflow, ...
                if type(exc).__name__ == "ContextOverflow":
                    todo = ("start a new conversation (agent.reset()) or drop old turns (notebook 05 shows how), "
                            "then send the message again")
                else:
                    todo = "check the runtime (`python -m helpers doctor`) and send the message again"
                msg = (f"The runtime {runtime_name} failed during the request ({type(exc).__name__}: {exc}). "
                       f"The conversation is unchanged ({len(self.messages)} messages): {todo}.")
                steps.append(Step("error", {"type": "runtime", "message": msg}))
                yield AgentEvent("error", msg, steps[-1].detail)
                yield finish("", False, msg)
                return
            runtime_name, model = res.runtime, res.model
            tokens[0] += res.prompt_tokens
            tokens[1] += res.completion_tokens
            calls = list(res.tool_calls)
            error = res.error
            failed = self._runtime_failure(res, runtime_name)
            if failed:  # the runtime failed or cut the reply: not the model's call to fix, so no retry
                steps.append(Step("model", {"content": res.content, "tool_calls": [], "error": error,
                                            "finish_reason": res.finish_reason}))
                steps.append(Step("error", {"type": (error or {}).get("type", "cut"), "message": failed}))
                yield AgentEvent("error", failed, steps[-1].detail)
                yield finish("", False, failed)
                return
            noted = None
            if error and error.get("type") == "bad_arguments" and res.raw:
                # the runtime checked the raw values against the JSON schema; the toolbox normalises
                # first (e.g. "c-1234" -> "C-1234") and checks again before anything runs, so take the
                # calls as written and let the toolbox decide
                recovered = _calls_from_raw(res.raw, self.tools.names)
                if recovered is not None:
                    noted, (calls, error) = error, recovered
            steps.append(Step("model", {"content": res.content, "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls], "error": error,
                "prompt_tokens": res.prompt_tokens, "completion_tokens": res.completion_tokens,
                **({"runtime_check": noted} if noted else {})}))
            yield AgentEvent("model", res.content, steps[-1].detail)

            # ---- a broken reply: structured error back to the model, bounded retry
            if not error:
                for c in calls:
                    copied = copied_error_text(c.arguments, fed_errors)
                    if copied is not None:
                        error = {"type": "copied_error_text", "message": f"{c.name} was called with text copied "
                                 f"from an error message ({copied[:60]!r}); error text is data, not an argument"}
                        break
            if not error and not calls and markup_in(res.content or ""):
                marker = markup_in(res.content or "").strip("<>/|")  # a call that did not parse: never an answer
                error = {"type": "markup_in_answer", "message": f"the reply holds the chat marker {marker} outside "
                         "a valid tool call", "raw": res.content}
            if error:
                failures += 1
                feedback = {"error": f"invalid tool call ({error.get('type', 'error')}): {error.get('message', '')}",
                            "hint": "call one of the offered tools with a JSON object of valid arguments, "
                                    "or answer in text"}
                fed_errors += [feedback["error"], feedback["hint"]]
                steps.append(Step("error", {"type": error.get("type", "error"), "message": error.get("message", ""),
                                            "retry": failures <= self.max_retries}))
                yield AgentEvent("error", steps[-1].detail["message"], steps[-1].detail)
                convo.append({"role": "assistant", "content": res.raw or res.content or error.get("raw", "")})
                convo.append({"role": "tool", "tool_call_id": "invalid", "content": result_text(feedback)})
                if failures > self.max_retries:
                    yield finish("", False, self._give_up(error, failures))
                    return
                continue

            # ---- tool calls: validate, check permission, run, feed back
            if calls:
                convo.append(_assistant_message(res.content, calls))
                bad = None
                for call in calls:
                    step, text, ok = self._run_call(call.name, call.arguments)
                    steps.append(step)
                    yield AgentEvent("tool", text, step.detail)
                    convo.append({"role": "tool", "tool_call_id": call.id, "content": text})
                    if step.detail.get("error"):
                        fed_errors.append(step.detail["error"])
                    if step.detail.get("error_type") in ("tool_failed", "tool_timeout", "bad_result"):
                        tool_failures.append(f"{call.name}: {step.detail['error']}")
                    if not ok:
                        bad = step.detail
                if bad is not None:
                    failures += 1
                    if failures > self.max_retries:
                        yield finish("", False, self._give_up({"type": bad.get("error_type", "bad_call"),
                                                                "message": bad.get("error", "")}, failures))
                        return
                continue

            # ---- text: the answer
            answer = res.content
            if not answer.strip():
                msg = ("The model returned an empty answer (no text, no tool call). The conversation is unchanged: "
                       "send the message again, or rephrase it.")
                steps.append(Step("error", {"type": "empty_answer", "message": msg}))
                yield AgentEvent("error", msg, steps[-1].detail)
                yield finish("", False, msg)
                return
            if self.guard is not None:
                reason = self.guard.check_output(answer)
                if reason:
                    steps.append(Step("guard", {"stage": "output", "reason": reason}))
                    yield AgentEvent("guard", reason, steps[-1].detail)
                    convo.append({"role": "assistant", "content": answer})
                    yield finish("", False, f"answer withheld: {reason}")
                    return
            convo.append({"role": "assistant", "content": answer})
            if tool_failures:  # the model answered, but without the result it needed: not a success
                msg = (f"A tool failed ({'; '.join(tool_failures)[:300]}), so the answer is the model's own fallback, "
                       "not a tool result. The conversation is unchanged: fix or retry the tool, then ask again.")
                steps.append(Step("error", {"type": "tool_failed", "message": msg}))
                yield AgentEvent("error", msg, steps[-1].detail)
                yield finish(answer, False, msg)
                return
            yield finish(answer, True, None)
            return
        msg = (f"Stopped after {self.max_steps} model call{'s' if self.max_steps > 1 else ''} without a final answer "
               "(step limit). The conversation "
               "is unchanged; ask again more simply, or raise max_steps.")
        steps.append(Step("error", {"type": "step_limit", "message": msg}))
        yield AgentEvent("error", msg, steps[-1].detail)
        yield finish("", False, msg)

    def _give_up(self, error: dict[str, Any], failures: int) -> str:
        return (f"The model made {failures} invalid tool call(s) in a row (last: {error.get('type')}: "
                f"{error.get('message')}); gave up after {self.max_retries} "
                f"retr{'y' if self.max_retries == 1 else 'ies'}. "
                "The conversation is unchanged: rephrase the request with the exact id or value.")

    def _run_call(self, name: str, arguments: dict[str, Any]) -> tuple[Step, str, bool]:
        """Validate, check permission, run one call: (step, text fed back to the model, whether it was valid)."""
        detail: dict[str, Any] = {"name": name, "arguments": arguments, "ran": False}
        if name not in self.tools:
            detail.update(error=f"unknown tool {name!r}; offered: {self.tools.names}", error_type="unknown_tool")
            self._audit({"tool": name, "arguments": arguments, "decision": "rejected", "error": detail["error"]})
            return Step("tool", detail), result_text({"error": detail["error"]}), False
        try:
            values = self.tools.validate(name, arguments)
        except ToolArgumentError as exc:
            detail.update(error=str(exc), error_type="bad_arguments")
            self._audit({"tool": name, "arguments": arguments, "decision": "rejected", "error": str(exc)})
            return Step("tool", detail), result_text({"error": f"invalid arguments: {exc}"}), False
        detail["arguments"] = values
        if self.guard is not None:
            reason = self.guard.check_call(name, values)
            if reason:
                detail.update(refused=reason)
                self._audit({"tool": name, "arguments": values, "decision": "refused", "reason": reason})
                return Step("guard", {**detail, "stage": "call", "reason": reason}), result_text(
                    {"error": f"not allowed: {reason}"}), True
        try:
            result = call_with_timeout(lambda: self.tools.call(name, values), self.tool_timeout)
            text = result_text(result)
        except ToolTimeout as exc:
            return self._tool_failed(detail, values, f"tool {name} timed out: {exc}", "tool_timeout")
        except ToolExecutionError as exc:
            inner = exc.cause if isinstance(exc.cause, ToolTimeout) else None
            if inner is not None:
                return self._tool_failed(detail, values, f"tool {name} timed out: {inner}", "tool_timeout")
            return self._tool_failed(detail, values, _safe_str(exc), "tool_failed")
        except Exception as exc:  # noqa: BLE001 - a result that is not data (circular, str() raising, ...)
            return self._tool_failed(detail, values, f"tool {name} failed or returned a value that is not JSON "
                                     f"data ({type(exc).__name__})", "bad_result")
        if self.guard is not None:
            text = self.guard.check_tool_result(name, text)
        detail.update(ran=True, result=result)
        self._audit({"tool": name, "arguments": values, "decision": "allowed", "result": result})
        return Step("tool", detail), text, True

    def _tool_failed(self, detail: dict[str, Any], values: dict[str, Any], message: str,
                     kind: str) -> tuple[Step, str, bool]:
        detail.update(error=message, error_type=kind)
        self._audit({"tool": detail["name"], "arguments": values, "decision": "allowed", "error": message})
        return Step("tool", detail), result_text({"error": message}), True

    def _runtime_failure(self, res: Any, runtime_name: str) -> str | None:
        """Why this reply cannot be used (runtime error, context overflow, cut reply), or None."""
        error = res.error or {}
        kind = error.get("type")
        unchanged = f"The conversation is unchanged ({len(self.messages)} messages)"
        if kind == "context_overflow":
            return (f"The conversation no longer fits the model's context ({error.get('message', '')[:200]}). "
                    f"{unchanged}: start a new conversation (agent.reset()) or drop old turns (notebook 05 shows "
                    "how), then send the message again.")
        if kind in RUNTIME_ERRORS or res.finish_reason == "error":
            return (f"The runtime {runtime_name} failed during the request ({kind}: {error.get('message', '')[:200]}). "
                    f"{unchanged}: check the runtime (`python -m helpers doctor`) and send the message again.")
        if res.finish_reason == "length" and not res.tool_calls:  # a closed call is whole even at the limit
            return (f"The reply was cut at max_tokens={self.max_tokens} before it ended. {unchanged}: raise "
                    "max_tokens (Agent(..., max_tokens=...)) or ask for a shorter answer.")
        return None


def _safe_str(exc: BaseException) -> str:
    """str(exc), even for an exception whose __str__ raises."""
    try:
        return str(exc)
    except Exception:  # noqa: BLE001
        return f"tool failed: {type(exc).__name__} (its message could not be read)"


def _assistant_message(content: str, calls: list[Any]) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": content or ""}
    if calls:
        msg["tool_calls"] = [c.openai() for c in calls]
    return msg


def _calls_from_raw(raw: str, names: list[str]) -> tuple[list[Any], None] | None:
    """The calls as the model wrote them (before the runtime's strict check), or None if unparseable."""
    from helpers.domain.chat_format import parse_reply
    from helpers.runtimes.base import ToolCall

    parsed = parse_reply(raw, known_tools=names)
    if parsed.error or not parsed.tool_calls:
        return None
    return [ToolCall(f"call_{i}", c["name"], c["arguments"]) for i, c in enumerate(parsed.tool_calls)], None


__all__ = ["Agent", "AgentEvent", "AgentResult", "Step", "MAX_INPUT_CHARS", "TOOL_TIMEOUT_S", "ToolTimeout",
           "call_with_timeout", "copied_error_text"]
