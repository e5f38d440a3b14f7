"""One contract, every runtime: the same checks against each runtime reachable on this machine.

Introduced in notebook 17 (all runtimes side by side); `python -m helpers contract` prints the table and
`tests/test_contract.py` runs it in CI on every runtime available here. Runtimes that look alike are not:
one returns tool-call arguments as an object, another as a string; one cuts a stream when a second request
arrives. Each check sends real requests and says pass, FAIL (with what it saw), or "not offered" when the
runtime does not have that feature at all; a runtime that is not running is "absent", with how to start it.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

PASS, FAIL, NOT_OFFERED, ABSENT = "pass", "FAIL", "not offered", "absent"

GREETING = [{"role": "user", "content": "hello there, how are you today?"}]
TOOL_CASE = {"messages": [{"role": "user", "content": "where is order 48213? thanks"}],
             "expected": {"name": "lookup_order", "arguments": {"order_id": "48213"}}}
TOOL_RESULT_TURN = [
    {"role": "user", "content": "where is order 48213? thanks"},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "call_0", "type": "function", "function": {
        "name": "lookup_order", "arguments": "{\"order_id\":\"48213\"}"}}]},
    {"role": "tool", "tool_call_id": "call_0",
     "content": "{\"order_id\":\"48213\",\"status\":\"shipped\",\"eta\":\"2026-12-03\"}"}]
CONCURRENT_PROMPTS = ["what time is it right now?", "is SKU-4QX2 in stock?", "thanks, that is all for today",
                      "who is customer C-2231?"]
OVERFLOW_WORDS = 6000  # far past a 2,048-token context in any tokenizer


@dataclass
class Outcome:
    """One check on one runtime."""

    status: str
    detail: str = ""


class NotOffered(Exception):
    """Raised by a check when the runtime has no such feature (not a failure)."""


def _tools() -> list[dict[str, Any]]:
    from helpers.domain.tools import openai_tools

    return openai_tools()


def check_plain_answer(rt) -> Outcome:
    """No tools offered: a non-empty text answer, no tool call, no error."""
    r = rt.chat(GREETING, None, max_tokens=64)
    if r.error or r.tool_calls or not r.content.strip():
        return Outcome(FAIL, f"content={r.content[:60]!r} tool_calls={len(r.tool_calls)} error={r.error}")
    return Outcome(PASS, f"{r.content[:50]!r}")


def check_tool_call(rt) -> Outcome:
    """A request that needs a tool: the call's name, and its arguments decoded to a dict that matches."""
    from helpers.eval import case_passes

    r = rt.chat(TOOL_CASE["messages"], _tools(), max_tokens=96)
    if not r.tool_calls:
        return Outcome(FAIL, f"no tool call; content={r.content[:60]!r} error={r.error}")
    call = r.tool_calls[0]
    if not isinstance(call.arguments, dict):
        return Outcome(FAIL, f"arguments are {type(call.arguments).__name__}, not a dict")
    got = {"name": call.name, "arguments": call.arguments}
    if not case_passes(TOOL_CASE["expected"], got):
        return Outcome(FAIL, f"called {got}")
    return Outcome(PASS, f"{call.name}({call.arguments})")


def check_tool_result_answer(rt) -> Outcome:
    """A tool result in the conversation: the runtime accepts the `tool` role and answers in text."""
    r = rt.chat(TOOL_RESULT_TURN, _tools(), max_tokens=96)
    if r.error or r.tool_calls or not r.content.strip():
        return Outcome(FAIL, f"content={r.content[:60]!r} tool_calls={len(r.tool_calls)} error={r.error}")
    return Outcome(PASS, f"{r.content[:50]!r}")


def check_stream_adds_up(rt) -> Outcome:
    """Streamed deltas join to the streamed result, and that equals the non-streamed answer (temperature 0)."""
    whole = rt.chat(GREETING, None, max_tokens=64)
    deltas, final = [], None
    for ev in rt.stream(GREETING, None, max_tokens=64):
        if ev.result is not None:
            final = ev.result
        else:
            deltas.append(ev.delta)
    if final is None:
        return Outcome(FAIL, "the stream ended without a final result")
    joined = "".join(deltas)
    if joined != final.content:
        return Outcome(FAIL, f"deltas {joined[:40]!r} != result {final.content[:40]!r}")
    if final.content != whole.content:
        return Outcome(FAIL, f"streamed {final.content[:40]!r} != non-streamed {whole.content[:40]!r}")
    return Outcome(PASS, f"{len(deltas)} deltas")


def check_finish_reason(rt) -> Outcome:
    """`length` when max_tokens cuts the answer, `stop` when it ends by itself."""
    cut = rt.chat(GREETING, None, max_tokens=2)
    full = rt.chat(GREETING, None, max_tokens=128)
    if cut.finish_reason != "length" or full.finish_reason != "stop":
        return Outcome(FAIL, f"cut -> {cut.finish_reason!r}, full -> {full.finish_reason!r}")
    return Outcome(PASS, "length / stop")


def check_stop_sequence(rt) -> Outcome:
    """`stop=[...]` on the OpenAI wire (servers only; the in-process interface has no stop parameter)."""
    base_url = getattr(rt, "base_url", None)
    if not base_url:
        raise NotOffered("in-process runtime: the Runtime interface takes no stop sequences")
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key=getattr(rt, "api_key", None) or "none", max_retries=0, timeout=60)
    whole = client.chat.completions.create(model=rt.model, messages=GREETING, max_tokens=64, temperature=0)
    text = whole.choices[0].message.content or ""
    words = text.split()
    if len(words) < 2:
        return Outcome(FAIL, f"answer too short to test a stop sequence: {text!r}")
    stop = words[1]
    import openai

    try:
        cut = client.chat.completions.create(model=rt.model, messages=GREETING, max_tokens=64, temperature=0,
                                             stop=[stop])
    except openai.BadRequestError as exc:  # a clear refusal naming the field is honest: not offered
        if "stop" in str(exc.message).lower():
            raise NotOffered(f"refused with HTTP 400: {exc.message[:90]}") from None
        raise
    got = cut.choices[0].message.content or ""
    if stop in got or not text.startswith(got.rstrip()):
        return Outcome(FAIL, f"stop={stop!r}: got {got!r} from {text!r}")
    return Outcome(PASS, f"stop={stop!r} -> {got!r}")


def check_unknown_model(name: str) -> Callable[[Any], Outcome]:
    """Asking for a model that does not exist is a clear error, never an answer from another model."""
    def check(rt) -> Outcome:
        from helpers.runtimes import get_runtime

        try:
            other = get_runtime(name, model="no-such-model-0000.gguf" if name in ("embedded", "llamacpp",
                                                                                 "llamaserver") else
                                "no-such-model-0000")
        except Exception as exc:  # the clear error we want
            return Outcome(PASS, f"{type(exc).__name__}: {str(exc)[:70]}")
        try:
            r = other.chat(GREETING, None, max_tokens=8)
        except Exception as exc:
            return Outcome(PASS, f"{type(exc).__name__} on chat: {str(exc)[:60]}")
        finally:
            other.close()
        if r.error:
            return Outcome(PASS, f"error {r.error}")
        return Outcome(FAIL, f"answered as {r.answered_by}: {r.content[:40]!r}")
    return check


def check_context_overflow(rt) -> Outcome:
    """A prompt far past the context window: a clear error (exception or result.error), within seconds."""
    long = [{"role": "user", "content": " ".join(["order"] * OVERFLOW_WORDS) + " where is it?"}]
    t0 = time.perf_counter()
    try:
        r = rt.chat(long, None, max_tokens=16)
    except Exception as exc:
        return Outcome(PASS, f"{type(exc).__name__}: {str(exc)[:70]} ({time.perf_counter() - t0:.1f} s)")
    if r.error:
        return Outcome(PASS, f"error {str(r.error)[:70]}")
    return Outcome(FAIL, f"answered {r.content[:40]!r} as if the prompt fit (finish {r.finish_reason})")


def check_concurrent(rt) -> Outcome:
    """Four requests at once give the same answers as one at a time (temperature 0), none lost or cut."""
    def ask(p: str):
        return rt.chat([{"role": "user", "content": p}], _tools(), max_tokens=64)

    def key(r) -> tuple:
        return (r.content, [(c.name, c.arguments) for c in r.tool_calls], r.finish_reason, bool(r.error))

    sequential = [key(ask(p)) for p in CONCURRENT_PROMPTS]
    with ThreadPoolExecutor(len(CONCURRENT_PROMPTS)) as pool:
        concurrent = [key(r) for r in pool.map(ask, CONCURRENT_PROMPTS)]
    differ = [p for p, a, b in zip(CONCURRENT_PROMPTS, sequential, concurrent) if a != b]
    if differ:
        return Outcome(FAIL, f"{len(differ)}/{len(CONCURRENT_PROMPTS)} differ from sequential, e.g. {differ[0]!r}")
    return Outcome(PASS, f"{len(CONCURRENT_PROMPTS)} identical")


def checks_for(name: str) -> dict[str, Callable[[Any], Outcome]]:
    """The contract's checks, in the order the table shows them."""
    return {"plain answer": check_plain_answer, "tool call": check_tool_call,
            "tool result -> answer": check_tool_result_answer, "stream = chat": check_stream_adds_up,
            "finish_reason": check_finish_reason, "stop sequence": check_stop_sequence,
            "unknown model": check_unknown_model(name), "context overflow": check_context_overflow,
            "concurrent = sequential": check_concurrent}


def run_check(check: Callable[[Any], Outcome], rt) -> Outcome:
    """Run one check; an exception the check did not expect is a failure that names it."""
    try:
        return check(rt)
    except NotOffered as exc:
        return Outcome(NOT_OFFERED, str(exc))
    except Exception as exc:
        return Outcome(FAIL, f"raised {type(exc).__name__}: {str(exc)[:80]}")


def run_contract(names: list[str] | None = None, log: Callable[[str], None] | None = None
                 ) -> dict[str, dict[str, Outcome]]:
    """{runtime: {check: Outcome}} for each runtime; a runtime that cannot start is absent in every row."""
    from helpers.runtimes import RUNTIME_NAMES, get_runtime

    table: dict[str, dict[str, Outcome]] = {}
    for name in names or list(RUNTIME_NAMES):
        checks = checks_for(name)
        try:
            rt = get_runtime(name)
        except Exception as exc:
            table[name] = {c: Outcome(ABSENT, str(exc)[:160]) for c in checks}
            continue
        try:
            table[name] = {}
            for cname, check in checks.items():
                table[name][cname] = run_check(check, rt)
                if log:
                    log(f"{name:<16}{cname:<26}{table[name][cname].status:<12}{table[name][cname].detail[:60]}")
        finally:
            rt.close()
    return table


def format_contract(table: dict[str, dict[str, Outcome]]) -> str:
    """Runtimes as columns, checks as rows; then one line per failure with what was seen."""
    names = list(table)
    checks = list(next(iter(table.values()))) if table else []
    width = max([len(n) for n in names] + [11]) + 2
    lines = [f"{'check':<26}" + "".join(f"{n:>{width}}" for n in names)]
    for c in checks:
        lines.append(f"{c:<26}" + "".join(f"{table[n][c].status:>{width}}" for n in names))
    for n in names:
        for c, o in table[n].items():
            if o.status == FAIL:
                lines.append(f"- {n} / {c}: {o.detail}")
        absent = {o.detail for o in table[n].values() if o.status == ABSENT}
        for detail in absent:
            lines.append(f"- {n} absent: {detail}")
    return "\n".join(lines)
