"""Auto-checks for lab 14 (Ollama): each `check_*` raises AssertionError with a hint.

Introduced in lab 14. The learner's functions run on fresh answers built with the `ollama` client's own
response types (random counts and durations), fresh tool calls and fresh environments, against
`helpers.runtimes.ollama` and `helpers.runtimes.ollama_admin`.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from typing import Any


def _ok(msg: str) -> None:
    print(f"PASS: {msg}")


def check_decode_rate(fn: Callable[[Any], float | None], seed: int = 1414) -> None:
    """Lab 14, task 1: tokens/s from eval_count / eval_duration (nanoseconds), None when missing."""
    import ollama

    from helpers.runtimes.ollama import decode_tokens_per_s

    rng = random.Random(seed)
    n = 0
    for _ in range(30):
        count, ns = rng.randint(1, 900), rng.randint(10_000_000, 9_000_000_000)
        data = {"model": "m", "created_at": "2026-01-01T00:00:00Z", "done": True, "eval_count": count,
                "eval_duration": ns, "prompt_eval_count": rng.randint(1, 99),
                "prompt_eval_duration": rng.randint(1_000_000, 99_000_000), "message": {"role": "assistant",
                                                                                       "content": "x"}}
        for resp in (ollama.ChatResponse.model_validate(data), data):
            got, want = fn(resp), decode_tokens_per_s(resp)
            assert got is not None, "a complete answer has a speed; return eval_count / eval_duration * 1e9"
            if math.isclose(got, want / 1e3, rel_tol=1e-6) or math.isclose(got, want / 1e6, rel_tol=1e-6):
                raise AssertionError(f"{count} tokens in {ns} ns: you returned {got:.6g}, expected {want:.6g}; "
                                     "the durations are nanoseconds, so multiply by 1e9")
            assert math.isclose(float(got), want, rel_tol=1e-6), (
                f"{count} tokens in {ns} ns: expected {want:.6g} tokens/s, got {got!r}; use eval_count and "
                "eval_duration (not the prompt_eval_* fields)")
            n += 1
    for missing in ({"eval_count": 0, "eval_duration": 5}, {"eval_count": 5}, {}):
        got = fn({"model": "m", **missing})
        assert got is None, f"{missing or 'no timings'}: return None (got {got!r}); a load-only answer has no speed"
    _ok(f"decode speed right on {n} fresh answers (objects and dicts) and None on 3 without timings")


def check_tool_result_message(fn: Callable[[Any, Any], dict], seed: int = 1415) -> None:
    """Lab 14, task 2: {"role": "tool", "tool_name": name, "content": JSON string}."""
    import ollama

    rng = random.Random(seed)
    names = ["get_weather", "lookup_order", "check_inventory", "create_ticket", "schedule_callback"]
    for _ in range(20):
        name = rng.choice(names)
        call = ollama.Message.ToolCall(function=ollama.Message.ToolCall.Function(name=name,
                                                                                 arguments={"k": rng.random()}))
        result = rng.choice([{"ok": True, "value": rng.randint(0, 99)}, [1, 2, 3], "Zürich", None, 3.5])
        msg = fn(call, result)
        assert isinstance(msg, dict), "return a dict (a chat message)"
        assert msg.get("role") == "tool", f"role must be 'tool', got {msg.get('role')!r}"
        assert msg.get("tool_name") == name, (f"tool_name must be the called tool's name {name!r}, got "
                                              f"{msg.get('tool_name')!r}; Ollama matches results by name, not id")
        content = msg.get("content")
        assert isinstance(content, str), (f"content must be a string (JSON text of the result), got "
                                          f"{type(content).__name__}; use json.dumps")
        try:
            back = json.loads(content)
        except json.JSONDecodeError:
            raise AssertionError(f"content {content!r} is not JSON: use json.dumps(result)") from None
        assert back == result, f"content decodes to {back!r}, expected {result!r}"
    _ok("tool-result messages right for 20 fresh calls and results")


def check_invented_settings(fn: Callable[[dict], list], seed: int = 1416) -> None:
    """Lab 14, task 3: the sorted OLLAMA_* names Ollama does not read."""
    from helpers.runtimes.ollama_admin import INVENTED_ENV, REAL_ENV, check_env

    rng = random.Random(seed)
    real = list(REAL_ENV) + ["OLLAMA_DEBUG", "OLLAMA_NO_CLOUD"]
    fake = list(INVENTED_ENV) + ["OLLAMA_THREADS", "OLLAMA_GPU_MEMORY", "OLLAMA_NUMPARALLEL"]
    other = ["PATH", "HOME", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS"]
    for _ in range(30):
        env = {k: "1" for k in rng.sample(real, rng.randint(0, 5)) + rng.sample(fake, rng.randint(0, 4))
               + rng.sample(other, rng.randint(0, 2))}
        env.pop("OLLAMA_HOST", None)
        want = sorted(m.split(":")[0] for m in check_env(env))
        got = fn(dict(env))
        assert isinstance(got, list), "return a list of names"
        assert got == want, (f"env {sorted(env)}: expected {want}, got {got}; flag only OLLAMA_* names Ollama does "
                             "not read, sorted (OLLAMA_NUM_PARALLEL is real, OLLAMA_NUM_THREAD is not)")
    _ok("invented settings flagged right in 30 fresh environments")
