"""Auto-checks for lab 04 (multi-agent routing): each `check_*` prints PASS or raises AssertionError with a hint.

Introduced in lab 04. The checks test the learner's mapping, cost function and escalation rule on fresh
inputs (new requests, random calls and prices, random signal sets), never on hard-coded answers.
"""

from __future__ import annotations

import random
from typing import Any, Callable


def _ok(msg: str) -> None:
    print(f"PASS: {msg}")


def check_mapping(mapping: dict[str, str], n: int = 60, seed: int = 4040) -> None:
    """Lab 04, task 1: every intent goes to a specialist allowed to run its tool; no-tool requests to `general`."""
    from helpers.agents.router import NO_TOOL, SPECIALISTS, check_mapping as _check, make_workload

    assert isinstance(mapping, dict), "mapping must be a dict: intent (tool name or NO_TOOL) -> specialist name"
    try:
        _check(mapping)
    except ValueError as exc:
        raise AssertionError(str(exc)) from None
    for item in make_workload(n, seed=seed):
        spec = SPECIALISTS[mapping[item.intent]]
        if item.intent == NO_TOOL:
            assert not spec.tools, (f"{item.text!r} needs no tool but goes to {spec.name}: send NO_TOOL to 'general', "
                                    "the agent without tools")
        else:
            assert item.intent in spec.tools, (f"{item.text!r} needs {item.intent}, but {spec.name} may only run "
                                               f"{list(spec.tools)}: send it to the specialist that owns the tool")
    _ok(f"all {n} fresh requests reach a specialist that may run the tool they need")


def check_cost(fn: Callable[[list[Any], Any], float], trials: int = 200, seed: int = 4041) -> None:
    """Lab 04, task 2: `fn(calls, prices)` prices remote calls by tokens and local calls by electricity."""
    from helpers.agents.router import Call, Prices, call_cost

    rng = random.Random(seed)
    for _ in range(trials):
        prices = Prices(rng.uniform(0.05, 20), rng.uniform(0.1, 80), rng.uniform(2, 300), rng.uniform(0.05, 0.6))
        calls = [Call(rng.choice(["router", "first", "escalated"]), "x/y", rng.random() < 0.4, rng.randint(0, 3000),
                      rng.randint(0, 800), rng.uniform(0, 8)) for _ in range(rng.randint(0, 6))]
        want = sum(call_cost(c, prices) for c in calls)
        got = fn(calls, prices)
        assert isinstance(got, (int, float)), f"return a number of USD, not {type(got).__name__}"
        assert abs(got - want) <= 1e-12 + 1e-9 * abs(want), (
            f"for {len(calls)} calls you got ${got:.9f}, expected ${want:.9f}. Remote: tokens / 1e6 x price per 1M "
            "(input and output separately). Local: seconds x watts / 3.6e6 (kWh) x price per kWh.")
    _ok(f"cost matches on {trials} fresh sets of calls and prices")


def check_rule(rule: Callable[[list[str]], bool], trials: int = 300, seed: int = 4042) -> dict[str, float]:
    """Lab 04, task 3: the rule escalates on every hard failure, never on a clean run; returns how often it
    escalates on each soft signal alone."""
    rng = random.Random(seed)
    hard = ["runtime_error", "schema", "failed", "no_tool"]
    soft = ["low_confidence", "wrong_tool", "not_permitted"]
    assert rule([]) is False, "a run with no failure signal must stay local: return False for []"
    for _ in range(trials):
        sig = rng.sample(hard, rng.randint(1, len(hard))) + rng.sample(soft, rng.randint(0, len(soft)))
        rng.shuffle(sig)
        got = rule(list(sig))
        assert isinstance(got, bool), f"return True or False, not {type(got).__name__}"
        assert got, f"signals {sig} include a hard failure ({[s for s in sig if s in hard]}): escalate"
    soft_rates = {s: float(rule([s])) for s in soft}
    _ok(f"escalates on all {trials} fresh signal sets with a hard failure, never on a clean run; "
        f"on a single soft signal: {soft_rates}")
    return soft_rates


def check_run(handled: list[Any], fn: Callable[[list[Any], Any], float], prices: Any,
              rule: Callable[[list[str]], bool] | None = None) -> None:
    """Lab 04, task 4: on the measured run, your cost function agrees with `summarize`, and every request escalated
    exactly when your rule says so for its signals (and then ran on the escalation tier)."""
    from helpers.agents.router import summarize

    assert handled, "run the workload first: `handled` is empty"
    assert rule is not None, "pass your escalation rule too: check_run(handled, cost, prices, rule)"
    want = summarize(handled, prices)["cost_usd"]
    got = sum(fn(h.calls, prices) for h in handled)
    assert abs(got - want) <= 1e-12 + 1e-9 * abs(want), f"your cost ${got:.9f} differs from summarize's ${want:.9f}"
    for h in handled:
        assert not h.escalated or h.signals, f"{h.text!r} escalated without a signal: check your rule"
        assert h.escalated == bool(rule(list(h.signals))), (
            f"{h.text!r} {'escalated' if h.escalated else 'stayed local'} with signals {h.signals}, but your rule "
            f"says {bool(rule(list(h.signals)))}: run the workload with MyPolicy (your rule) in the HybridRouter")
        assert h.escalated == any(c.stage == "escalated" for c in h.calls), (
            f"{h.text!r}: escalated={h.escalated} but its calls are {[c.stage for c in h.calls]}")
        assert all(c.prompt_tokens >= 0 and c.completion_tokens >= 0 for c in h.calls), \
            f"{h.text!r}: a call with negative token counts"
    _ok(f"{len(handled)} requests: cost ${got:.6f} agrees with summarize; each escalated exactly when your rule "
        "said so")


__all__ = ["check_mapping", "check_cost", "check_rule", "check_run"]
