"""Auto-checks for lab 03 (tool calling and the agent loop): each `check_*` raises AssertionError with a
hint, or prints what passed. They test the learner's code on fresh functions, arguments and requests.
"""

# no `from __future__ import annotations` here: the fresh functions below keep real annotation objects
import json
import random
from typing import Annotated, Any, Callable, Literal

from pydantic import Field


def _ok(msg: str) -> None:
    print(f"PASS: {msg}")


def _strip_titles(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_titles(v) for k, v in schema.items() if k != "title"}
    if isinstance(schema, list):
        return [_strip_titles(v) for v in schema]
    return schema


def _fresh_functions(seed: int) -> list[Callable[..., Any]]:
    """Typed functions the learner has never seen (their names and defaults depend on the seed)."""
    rng = random.Random(seed)
    n = rng.randint(2, 9)
    word = rng.choice(["parcel", "invoice", "voucher", "badge", "locker"])

    def reserve(item_id: Annotated[str, Field(pattern=r"^[A-Z]{2}[0-9]{3}$", description="Item id, e.g. AB123.")],
                quantity: Annotated[int, Field(ge=1, le=50)] = n) -> dict:
        """Reserve some units of an item.

        Only the first line is the description."""
        return {"item_id": item_id, "quantity": quantity}

    def convert(amount: float, currency: Literal["EUR", "USD", "GBP"], round_up: bool = False) -> dict:
        """Convert an amount of money into another currency."""
        return {"amount": amount, "currency": currency, "round_up": round_up}

    def label(text: Annotated[str, Field(min_length=1, max_length=40)], copies: int = 1) -> dict:
        """Print a label."""
        return {"text": text, "copies": copies}

    reserve.__name__ = f"reserve_{word}"
    reserve.__qualname__ = reserve.__name__
    return [reserve, convert, label]


def check_schema(derive: Callable[[Callable[..., Any]], dict[str, Any]]) -> None:
    """Lab 03, task 1: `derive(fn)` returns the OpenAI `tools` entry derived from a typed function."""
    from helpers.domain.tools import schema_from_function

    fns = _fresh_functions(random.randrange(10**6))
    for fn in fns:
        got = derive(fn)
        assert isinstance(got, dict) and got.get("type") == "function" and isinstance(got.get("function"), dict), \
            "return {'type': 'function', 'function': {'name': ..., 'description': ..., 'parameters': ...}}"
        want = schema_from_function(fn).openai()["function"]
        f = got["function"]
        assert f.get("name") == want["name"], f"name should be the function's __name__ ({want['name']!r})"
        assert f.get("description") == want["description"], \
            f"description should be the first line of the docstring: {want['description']!r}"
        params = _strip_titles(f.get("parameters") or {})
        wp = _strip_titles(want["parameters"])
        assert params.get("type") == "object", "parameters must be a JSON schema of type 'object'"
        assert sorted(params.get("properties", {})) == sorted(wp["properties"]), \
            f"{fn.__name__}: properties should be {sorted(wp['properties'])} (skip 'self')"
        assert sorted(params.get("required", [])) == sorted(wp.get("required", [])), \
            f"{fn.__name__}: required should list the parameters without a default: {wp.get('required', [])}"
        for name, prop in wp["properties"].items():
            for key in ("type", "enum", "pattern", "minimum", "maximum", "minLength", "maxLength", "default"):
                if key in prop:
                    assert params["properties"][name].get(key) == prop[key], \
                        (f"{fn.__name__}.{name}: {key} should be {prop[key]!r}; let pydantic build it from the "
                         "Annotated type (create_model(...).model_json_schema())")
    _ok(f"schemas of {len(fns)} fresh functions match their signatures and docstrings")


def check_validate_then_run(validate_then_run: Callable[[Callable[..., Any], dict[str, Any]], dict[str, Any]]) -> None:
    """Lab 03, task 2: invalid arguments return {"error": ...} and never run the function; valid ones run."""
    rng = random.Random()
    fns = _fresh_functions(rng.randrange(10**6))
    ran: list[tuple[str, dict]] = []

    def spy(fn):
        def inner(**kw):
            ran.append((fn.__name__, kw))
            return fn(**kw)
        inner.__name__, inner.__doc__ = fn.__name__, fn.__doc__
        inner.__signature__ = __import__("inspect").signature(fn)
        inner.__annotations__ = fn.__annotations__
        return inner

    reserve, convert, label = (spy(f) for f in fns)
    item = "".join(rng.choice("ABCDEFGH") for _ in range(2)) + str(rng.randint(100, 999))
    good = [(reserve, {"item_id": item}), (reserve, {"item_id": item, "quantity": str(rng.randint(1, 50))}),
            (convert, {"amount": rng.randint(1, 999), "currency": rng.choice(["EUR", "USD", "GBP"])}),
            (label, {"text": "fragile", "copies": 2})]
    bad = [(reserve, {"item_id": item.lower() + "x"}), (reserve, {"item_id": item, "quantity": 51}),
           (reserve, {}), (convert, {"amount": 5, "currency": "JPY"}), (label, {"text": "", "copies": 1}),
           (label, {"text": "ok", "colour": "red"}), (convert, {"amount": "lots", "currency": "EUR"})]
    for fn, args in bad:
        ran.clear()
        out = validate_then_run(fn, dict(args))
        assert not ran, f"{fn.__name__}({args}) should NOT run: its arguments fail the schema"
        assert isinstance(out, dict) and isinstance(out.get("error"), str) and out["error"], \
            f"{fn.__name__}({args}) should return {{'error': '<what is wrong>'}}"
    for fn, args in good:
        ran.clear()
        out = validate_then_run(fn, dict(args))
        assert len(ran) == 1, f"{fn.__name__}({args}) is valid and should run exactly once"
        assert "error" not in out, f"{fn.__name__}({args}) is valid; got {out}"
        if fn is reserve and "quantity" in args:
            assert ran[0][1]["quantity"] == int(args["quantity"]), \
                "pass the VALIDATED values to the function (pydantic turns '7' into 7)"
    _ok(f"{len(bad)} invalid calls refused without running, {len(good)} valid calls ran with validated values")


class CountingRuntime:
    """Wraps a REAL runtime and records what the loop sends it (used by the lab 03 check)."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.requests: list[list[dict[str, Any]]] = []
        self.answered_by: list[str] = []  # `answered_by` of each reply the real runtime returned
        self.replies: list[Any] = []  # the replies themselves (text and tool calls)
        self.name = runtime.name

    @property
    def model(self) -> str:
        return self.runtime.model

    def chat(self, messages, tools=None, **kw):
        self.requests.append(json.loads(json.dumps(messages, default=str)))
        res = self.runtime.chat(messages, tools, **kw)
        self.answered_by.append(res.answered_by)
        self.replies.append(res)
        return res


_READ_ONLY = ("lookup_order", "lookup_customer", "check_inventory", "run_diagnostics")  # tools the check may run again


def _run_tool(box: Any, name: str, args: dict[str, Any]) -> Any:
    try:
        return box.call(name, args)
    except Exception as exc:  # the loop records {'error': ...} for a call that fails
        return {"error": str(exc)}


def check_loop(agent_loop: Callable[..., dict[str, Any]], runtime: Any, n: int = 4) -> None:
    """Lab 03, task 3: the learner's loop on fresh requests with the real model, and its step limit."""
    from helpers.agents.evaluate import agent_cases
    from helpers.agents.toolbox import ToolBox, shop_copy

    seed = random.randrange(10**6)
    cases = [c for c in agent_cases(40, seed=seed, two_request_share=0, not_found_share=0)
             if c["turns"][0]["expected_tool"] in ("lookup_order", "lookup_customer", "run_diagnostics")][:n]
    shop = shop_copy("lab03-check")
    box = ToolBox.from_shop(shop)
    answered = 0
    seen: list[str] = []
    try:
        for c in cases:
            turn = c["turns"][0]
            rt = CountingRuntime(runtime)
            out = agent_loop(rt, box, turn["user"], max_steps=3)
            assert isinstance(out, dict) and {"answer", "steps", "calls", "answered_by"} <= set(out), \
                ("return {'answer': str or None, 'steps': model calls made, 'calls': [(name, arguments, result)], "
                 "'answered_by': res.answered_by}")
            assert out["answered_by"] == (rt.answered_by[-1] if rt.answered_by else None), \
                "'answered_by' should be res.answered_by of the last reply (e.g. 'embedded/<model>')"
            seen.extend(rt.answered_by)
            assert out["steps"] == len(rt.requests) <= 3, \
                f"'steps' should count the model calls ({len(rt.requests)} made) and never exceed max_steps=3"
            asked = [call.name for r in rt.replies for call in r.tool_calls]
            ran = [call[0] for call in out["calls"]]
            assert ran == asked, (f"'calls' lists {ran}, but the model asked for {asked}: run every tool call of "
                                  "every reply, in order, with the model's own arguments, and record (name, "
                                  "arguments, result)")
            for name, args, result in out["calls"]:
                want = _run_tool(box, name, args) if name in _READ_ONLY else None
                if isinstance(want, dict) and "error" in want:
                    assert isinstance(result, dict) and "error" in result, (
                        f"{name}({args}) fails on the shop ({want['error'][:60]}), your loop recorded {result}: "
                        "catch the error and record {'error': str(exc)}")
                elif want is not None:
                    assert result == want, (f"{name}({args}) gives {want} on the shop, your loop recorded {result}: "
                                            "record the tool's real result, box.call(name, arguments)")
            if out["answer"] is not None:
                last = rt.replies[-1] if rt.replies else None
                assert last is not None and not last.tool_calls and \
                    str(out["answer"]).strip() == (last.content or "").strip(), (
                    f"'answer' {str(out['answer'])[:60]!r} is not the text of the model's last reply "
                    f"({(last.content if last else '')[:60]!r}): the answer is the reply that calls no tool")
            if out["calls"]:
                second = rt.requests[1] if len(rt.requests) > 1 else []
                assert any(m.get("role") == "tool" for m in second), \
                    "after running a tool, send its result back as a {'role': 'tool', ...} message"
                assert any(m.get("role") == "assistant" and m.get("tool_calls") for m in second), \
                    "append the assistant's tool call to the messages before the tool result"
            if out["answer"]:
                answered += 1
                assert out["steps"] >= 1
        # the step limit: with one step the tool may run but no step is left for the answer
        turn = cases[0]["turns"][0]
        rt = CountingRuntime(runtime)
        out = agent_loop(rt, box, turn["user"], max_steps=1)
        assert len(rt.requests) == 1, f"max_steps=1 allows ONE model call; your loop made {len(rt.requests)}"
        if out["calls"]:
            assert out["answer"] is None, "when the step limit stops the loop, return answer=None"
    finally:
        shop.close()
    assert answered >= 1, "none of the fresh requests got an answer: feed the tool result back and ask again"
    _ok(f"loop answered {answered}/{len(cases)} fresh requests with the real model and stops at max_steps")
    print("answered by:", ", ".join(sorted(set(seen))))


__all__ = ["check_schema", "check_validate_then_run", "check_loop", "CountingRuntime"]
