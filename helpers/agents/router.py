"""Multi-agent routing: an intent router, specialist agents, model tiers, SLM-first escalation and cost.

Introduced in notebook 04 (multi-agent orchestration and hybrid routing). The pieces, each small:

- `keyword_intent` and `IntentRouter`: which of the ten domain tools (or none) a request needs. The router
  asks the small model (its tool choice is the intent) and falls back to transparent keyword rules.
- `SPECIALISTS` and `Specialist.agent`: customer service, technical support, scheduling, retail kiosk (and a
  tool-less `general` agent for greetings and out-of-scope requests), each an `Agent` with its own system
  prompt that may only run its own tools (`Permissions` refuses the others).
- `TIERS`, `tier_runtimes`, `select_tier`: lightweight / balanced / capable model tiers chosen by task
  complexity. Here they are one model at three quantization levels; `EDGEAI_TIER_<NAME>=runtime:model`
  picks a learner's own models instead.
- `decision_confidence`, `failure_signals`, `EscalationPolicy`, `escalation_target`: real signals that the
  small model failed or is unsure, and where to escalate (the best local tier, or an OpenAI-compatible
  endpoint only when the learner opts in with `allow_remote=True` or `EDGEAI_ESCALATION_URL`).
- `make_workload`, `HybridRouter.handle`, `Prices`, `summarize`: a labelled workload, the whole pipeline,
  and its share handled locally, latency and cost from measured token counts and an editable price table.
"""

from __future__ import annotations

import math
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

# the intents (NO_TOOL, the keyword rules) are helpers.agents.intents'
from helpers.agents.intents import KEYWORD_RULES, NO_TOOL, keyword_intent  # noqa: F401
from helpers.domain.tools import TOOL_NAMES

# ----------------------------------------------------------------------------------------------- specialists
@dataclass(frozen=True)
class Specialist:
    """A specialist agent's definition: its name, system prompt and the tools it may run (notebook 04)."""

    name: str
    system: str | None
    tools: tuple[str, ...]
    description: str

    def agent(self, runtime: Any, shop: Any, *, max_tokens: int = 96, offer: str = "catalog", audit: Any = None):
        """An `Agent` for this specialist on `runtime`.

        `offer="catalog"` shows the model all ten tools (what it was trained on) and lets `Permissions` refuse
        the ones this specialist may not run; `offer="own"` shows only its own tools (unseen in training).
        """
        from helpers.agents.loop import Agent
        from helpers.agents.toolbox import ToolBox

        if offer not in ("catalog", "own"):
            raise ValueError(f"offer must be 'catalog' or 'own', not {offer!r}")
        if not self.tools:
            return Agent(runtime, None, system=self.system, max_tokens=max_tokens, audit=audit)
        box = ToolBox.from_shop(shop, None if offer == "catalog" else list(self.tools))
        return Agent(runtime, box, system=self.system, max_tokens=max_tokens, max_steps=3, max_retries=1,
                     guard=Permissions(self.tools, self.name), audit=audit)


# The system prompts are among those the workbook model saw in training (helpers.data.synth.SYSTEM_PROMPTS).
SPECIALISTS: dict[str, Specialist] = {
    "customer_service": Specialist("customer_service", "You are a helpful customer service assistant.",
                                   ("lookup_order", "lookup_customer", "escalate_to_human"),
                                   "orders, customer accounts, hand-over to a human"),
    "technical_support": Specialist("technical_support", "You are an IT support agent.",
                                    ("run_diagnostics", "create_ticket"), "server diagnostics, support tickets"),
    "scheduling": Specialist("scheduling", "You are a scheduling assistant.",
                             ("schedule_callback", "get_current_time"), "callbacks, the time"),
    "retail_kiosk": Specialist("retail_kiosk", "You are a retail kiosk assistant. Be brief.",
                               ("check_inventory", "get_weather", "calculate_circle_area"),
                               "stock, weather, circle areas"),
    "general": Specialist("general", None, (), "greetings, thanks, out-of-scope requests (no tools)"),
}

INTENT_TO_SPECIALIST: dict[str, str] = {t: name for name, s in SPECIALISTS.items() for t in s.tools}
INTENT_TO_SPECIALIST[NO_TOOL] = "general"


class Permissions:
    """A Guard that lets a specialist run only its own tools (notebook 04); everything else passes."""

    def __init__(self, allowed: tuple[str, ...] | list[str], owner: str = "this agent") -> None:
        self.allowed = tuple(allowed)
        self.owner = owner

    def check_input(self, text: str) -> str | None:
        return None

    def check_call(self, name: str, arguments: dict[str, Any]) -> str | None:
        if name in self.allowed:
            return None
        return f"{self.owner} may only use {list(self.allowed)}; {name} belongs to another specialist"

    def check_tool_result(self, name: str, result: str) -> str:
        return result

    def check_output(self, text: str) -> str | None:
        return None


def check_mapping(mapping: dict[str, str]) -> None:
    """Raise ValueError unless `mapping` sends every intent (ten tools + NO_TOOL) to a known specialist."""
    missing = [t for t in (*TOOL_NAMES, NO_TOOL) if t not in mapping]
    if missing:
        raise ValueError(f"The intent -> specialist mapping has no entry for {missing}; add one for each.")
    unknown = sorted({s for s in mapping.values() if s not in SPECIALISTS})
    if unknown:
        raise ValueError(f"Unknown specialist(s) {unknown}; choose among {list(SPECIALISTS)}.")


# ----------------------------------------------------------------------------------------------- confidence
def decision_confidence(runtime: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                        max_steps: int = 16) -> dict[str, Any] | None:
    """Greedy-decode the model's first tokens up to its decision (a tool name, or the first text token) and
    return {"intent", "confidence", "tokens", "prompt_tokens"}; None when the runtime gives no logits.

    `confidence` is the product of the probabilities of the greedy tokens up to the decision (notebook 04).
    It needs the runtime's optional `next_token_logits` capability (the embedded runtime has it; servers that
    answer chats only do not, and then this returns None).
    """
    supports = getattr(runtime, "supports", None)  # any object with chat() may be a runtime here
    if not (supports and supports("next_token_logits") and supports("prompt_tokens")):
        return None
    import numpy as np

    from helpers.domain.chat_format import CALL_START

    toks = runtime.prompt_tokens(messages, tools)
    names = {}
    for n in [t.get("function", t)["name"] for t in tools or []]:
        ids = runtime.tokenize(n)
        if len(ids) == 1:
            names[ids[0]] = n
    call_start = runtime.tokenize(CALL_START)
    conf, seen = 1.0, []
    intent = NO_TOOL
    for i in range(max_steps):
        logits = np.asarray(runtime.next_token_logits(toks + seen), dtype=np.float64)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        t = int(p.argmax())
        conf *= float(p[t])
        seen.append(t)
        if i == 0 and [t] != call_start:
            break  # text: the decision is "answer without a tool"
        if t in names:
            intent = names[t]
            break
    return {"intent": intent, "confidence": conf, "tokens": len(seen), "prompt_tokens": len(toks)}


# ----------------------------------------------------------------------------------------------- the router
@dataclass
class RouteDecision:
    """Where the router sends a request: intent, specialist, how it decided, and what it cost (notebook 04)."""

    text: str
    intent: str
    specialist: str
    method: str  # "slm", "keywords" (rules chosen), "fallback" (the SLM failed, rules decided)
    confidence: float | None = None
    answered_by: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


class IntentRouter:
    """Classify a request's intent with the small model (its tool choice) or keyword rules (notebook 04).

    method: "slm" (model only), "keywords" (rules only) or "hybrid" (model; rules when the model errs or its
    decision confidence is below `min_confidence`).
    """

    def __init__(self, runtime: Any | None = None, method: str = "hybrid", mapping: dict[str, str] | None = None,
                 min_confidence: float = 0.3, max_tokens: int = 24) -> None:
        if method not in ("slm", "keywords", "hybrid"):
            raise ValueError(f"method must be 'slm', 'keywords' or 'hybrid', not {method!r}")
        if method != "keywords" and runtime is None:
            raise ValueError(f"method={method!r} needs a runtime (e.g. get_runtime('embedded')); or use 'keywords'.")
        self.runtime, self.method = runtime, method
        self.mapping = dict(mapping or INTENT_TO_SPECIALIST)
        check_mapping(self.mapping)
        self.min_confidence, self.max_tokens = min_confidence, max_tokens
        from helpers.domain.tools import openai_tools

        self.tools = openai_tools()

    def _slm(self, text: str) -> tuple[str | None, float | None, str, int, int]:
        """(intent or None when the reply is unusable, confidence, answered_by, prompt, completion tokens)."""
        msgs = [{"role": "user", "content": text}]
        d = decision_confidence(self.runtime, msgs, self.tools)
        who = f"{self.runtime.name}/{self.runtime.model}"
        if d is not None:  # the greedy walk is the model's greedy decision, with its probability
            return d["intent"], d["confidence"], who, d["prompt_tokens"], d["tokens"]
        r = self.runtime.chat(msgs, self.tools, max_tokens=self.max_tokens)
        names = "|".join(TOOL_NAMES)
        m = re.search(rf'"name"\s*:\s*"({names})"', r.raw or r.content or "")
        if r.tool_calls:
            intent: str | None = r.tool_calls[0].name
        elif m:
            intent = m.group(1)  # the call was cut at max_tokens: the name is all the router needs
        elif r.error and r.error.get("type") == "server_error":
            intent = None
        else:
            intent = NO_TOOL if "<tool_call>" not in (r.raw or r.content) else None
        return intent, None, r.answered_by, r.prompt_tokens, r.completion_tokens

    def route(self, text: str) -> RouteDecision:
        """The intent and specialist for one request."""
        import time

        t0 = time.perf_counter()
        if self.method == "keywords":
            intent = keyword_intent(text)
            return RouteDecision(text, intent, self.mapping[intent], "keywords", seconds=time.perf_counter() - t0)
        intent, conf, who, pt, ct = self._slm(text)
        method = "slm"
        if self.method == "hybrid" and (intent is None or (conf is not None and conf < self.min_confidence)):
            intent, method = keyword_intent(text), "fallback"
        elif intent is None:
            intent = NO_TOOL
        return RouteDecision(text, intent, self.mapping[intent], method, conf, who, pt, ct, time.perf_counter() - t0)


# ----------------------------------------------------------------------------------------------- tiers
TIER_NAMES = ("lightweight", "balanced", "capable")
# Here: one model at three quantization levels (they differ in size and speed, not in what the model knows).
TIERS: dict[str, str] = {"lightweight": "Q4_K_M", "balanced": "Q8_0", "capable": "F16"}

# Complexity of each intent: how much the model must copy or compose (ids, free text, times).
COMPLEXITY: dict[str, str] = {
    NO_TOOL: "lightweight", "get_current_time": "lightweight", "calculate_circle_area": "lightweight",
    "get_weather": "lightweight",
    "lookup_order": "balanced", "lookup_customer": "balanced", "check_inventory": "balanced",
    "run_diagnostics": "balanced",
    "schedule_callback": "capable", "create_ticket": "capable", "escalate_to_human": "capable",
}


def select_tier(text: str, intent: str, table: dict[str, str] | None = None, long_words: int = 20) -> str:
    """The tier for a request: its intent's complexity, one tier up for a long request (notebook 04)."""
    tier = (table or COMPLEXITY).get(intent, "balanced")
    if len(text.split()) > long_words and tier != "capable":
        tier = TIER_NAMES[TIER_NAMES.index(tier) + 1]
    return tier


def tier_files(out_dir: str | Path | None = None) -> dict[str, Path]:
    """GGUF file per tier: shipped f16 and Q8_0, and Q4_K_M quantized here once (under build/router)."""
    from helpers.model.export import quantized_gguf
    from helpers.paths import BUILD
    from helpers.registry import artefact_path

    f16, q8 = artefact_path("gguf-f16"), artefact_path("gguf-q8_0")
    if not f16.exists():
        raise FileNotFoundError(f"No model at {f16}: restore data/gguf from git or run `python -m helpers export`.")
    q4 = quantized_gguf(f16, "Q4_K_M", Path(out_dir) if out_dir else BUILD / "router")
    return {"lightweight": q4, "balanced": q8 if q8.exists() else f16, "capable": f16}


def tier_runtimes(out_dir: str | Path | None = None) -> dict[str, Any]:
    """A runtime per tier. `EDGEAI_TIER_LIGHTWEIGHT` (BALANCED, CAPABLE) = `runtime:model` (e.g.
    `ollama:llama3.2:1b`) picks a learner's own model for that tier; otherwise the embedded GGUF tiers."""
    from helpers.runtimes import get_runtime

    files = None
    out: dict[str, Any] = {}
    for tier in TIER_NAMES:
        spec = os.environ.get(f"EDGEAI_TIER_{tier.upper()}", "").strip()
        if spec:
            name, _, model = spec.partition(":")
            out[tier] = get_runtime(name, model=model or None)
        else:
            files = files or tier_files(out_dir)
            out[tier] = get_runtime("embedded", model=str(files[tier]))
    return out


# ----------------------------------------------------------------------------------------------- escalation
def failure_signals(result: Any, route: RouteDecision, confidence: float | None = None,
                    min_confidence: float = 0.5) -> list[str]:
    """The real signals that the local run failed or is unsure (notebook 04):

    runtime_error (structured error from the runtime), schema (a call failed validation), not_permitted (the
    model called another specialist's tool), no_tool (the router expected a tool, none ran), wrong_tool
    (the tool that ran is not the one the router chose), failed (the agent gave up), low_confidence
    (decision probability under `min_confidence`; embedded runtime only)."""
    sig: list[str] = []
    steps = getattr(result, "steps", [])
    for s in steps:
        if s.kind == "error" and s.detail.get("type") in ("runtime",):
            sig.append("runtime_error")
        elif s.kind == "error" and s.detail.get("type") in ("invalid_json", "bad_call", "unknown_tool"):
            sig.append("runtime_error")
        elif s.kind == "error" and s.detail.get("type") == "bad_arguments":
            sig.append("schema")
        elif s.kind == "tool" and s.detail.get("error_type") == "bad_arguments":
            sig.append("schema")
        elif s.kind == "guard" and s.detail.get("stage") == "call":
            sig.append("not_permitted")
    ran = [c["name"] for c in getattr(result, "tool_calls", [])]
    if route.intent != NO_TOOL:
        if not ran:
            sig.append("no_tool")
        elif route.intent not in ran:
            sig.append("wrong_tool")
    elif ran:
        sig.append("wrong_tool")
    if not getattr(result, "ok", True):
        sig.append("failed")
    if confidence is not None and confidence < min_confidence:
        sig.append("low_confidence")
    return list(dict.fromkeys(sig))


@dataclass
class EscalationPolicy:
    """Which signals send a request to the bigger model (notebook 04). Edit `on` to change the rule."""

    on: tuple[str, ...] = ("runtime_error", "schema", "not_permitted", "no_tool", "wrong_tool", "failed",
                           "low_confidence")
    min_confidence: float = 0.5

    def should_escalate(self, signals: list[str]) -> bool:
        """True when any signal is one the policy escalates on."""
        return any(s in self.on for s in signals)


@dataclass
class EscalationTarget:
    """Where escalated requests go: a remote OpenAI-compatible endpoint, or the best local tier."""

    runtime: Any
    remote: bool
    note: str


def escalation_target(local_best: Any, env: dict[str, str] | None = None,
                      allow_remote: bool = False) -> EscalationTarget:
    """Where escalations go (notebook 04): `local_best` unless remote escalation is explicitly opted in.

    Opt-in is either `allow_remote=True` (the notebook's `ALLOW_REMOTE` parameter; then OPENAI_API_KEY with
    optional OPENAI_BASE_URL, default api.openai.com) or an explicit `EDGEAI_ESCALATION_URL` environment
    variable (an OpenAI-compatible endpoint; OPENAI_API_KEY is sent to it when set). An OPENAI_API_KEY
    alone sends nothing anywhere. `EDGEAI_ESCALATION_MODEL` names the remote model.
    """
    env = dict(os.environ if env is None else env)
    key = env.get("OPENAI_API_KEY", "").strip()
    explicit_url = env.get("EDGEAI_ESCALATION_URL", "").strip()
    here = f"the best local tier, {local_best.name}/{local_best.model}"
    if not explicit_url and not allow_remote:
        why = ("OPENAI_API_KEY is set, but remote escalation is off" if key else "remote escalation is off")
        return EscalationTarget(local_best, False,
                                f"{why} (ALLOW_REMOTE=False and no EDGEAI_ESCALATION_URL): escalations go to "
                                f"{here}. Nothing leaves this machine. To opt in, set ALLOW_REMOTE = True "
                                "(with OPENAI_API_KEY) or EDGEAI_ESCALATION_URL.")
    if not explicit_url and not key:
        return EscalationTarget(local_best, False,
                                f"ALLOW_REMOTE=True but OPENAI_API_KEY is not set: escalations go to {here}. "
                                "Nothing leaves this machine. Set OPENAI_API_KEY (and optionally OPENAI_BASE_URL) "
                                "or EDGEAI_ESCALATION_URL to use a remote endpoint.")
    from helpers.runtimes import get_runtime

    url = explicit_url or env.get("OPENAI_BASE_URL", "").strip() or "https://api.openai.com/v1"
    model = env.get("EDGEAI_ESCALATION_MODEL", "").strip() or "gpt-4o-mini"
    # built, not contacted: the endpoint sees a request only when a request escalates
    rt = get_runtime("openai", model=model, check=False, base_url=url, api_key=key or "not-needed-locally")
    how = "EDGEAI_ESCALATION_URL" if explicit_url else "ALLOW_REMOTE=True and OPENAI_API_KEY"
    return EscalationTarget(rt, True, f"Escalations go to {model} at {url} (opted in by {how}): the escalated "
                                      "requests' text, including any customer ids in it, is sent there.")


# ----------------------------------------------------------------------------------------------- workload
@dataclass
class WorkItem:
    """One labelled request: its text, the tool it needs (or NO_TOOL) and the expected arguments."""

    text: str
    intent: str
    arguments: dict[str, Any] = field(default_factory=dict)

    @property
    def specialist(self) -> str:
        return INTENT_TO_SPECIALIST[self.intent]


def make_workload(n: int, seed: int = 123, no_tool_share: float = 0.2) -> list[WorkItem]:
    """`n` labelled requests from the held-out (dev) phrasings and values, about `no_tool_share` with no tool."""
    import random

    from helpers.data import synth

    if n < 1:
        raise ValueError("n must be at least 1.")
    s = synth.DialogueSampler(split="dev", seed=seed)
    rng = random.Random(seed)
    items = []
    for i in range(n):
        if rng.random() < no_tool_share:
            kind = rng.choice(["greet", "thanks", "ood", "ood"])
            pools = {"greet": (synth.GREETINGS, synth.GREETINGS_DEV), "thanks": (synth.THANKS, synth.THANKS_DEV),
                     "ood": (synth.OUT_OF_DOMAIN, synth.OUT_OF_DOMAIN_DEV)}[kind]
            items.append(WorkItem(s.fill(s.pick(*pools), {}, wrap=kind == "ood"), NO_TOOL))
        else:
            tool = TOOL_NAMES[i % len(TOOL_NAMES)] if n >= len(TOOL_NAMES) else rng.choice(TOOL_NAMES)
            text, args = s.request(tool)
            items.append(WorkItem(text, tool, args))
    return items


# ----------------------------------------------------------------------------------------------- the pipeline
@dataclass
class Call:
    """One model run inside a request: where it ran, its tokens and seconds."""

    stage: str  # "router", "first", "escalated"
    answered_by: str
    remote: bool
    prompt_tokens: int
    completion_tokens: int
    seconds: float


@dataclass
class Handled:
    """A request after the pipeline: route, tier, signals, whether it escalated, the answer and every call."""

    text: str
    route: RouteDecision
    tier: str
    signals: list[str]
    escalated: bool
    answer: str
    ok: bool
    answered_by: str
    tool_calls: list[dict[str, Any]]
    calls: list[Call]
    seconds: float

    @property
    def handled_locally(self) -> bool:
        """True when no remote model was used."""
        return not any(c.remote for c in self.calls)


class HybridRouter:
    """Route -> specialist on the tier its complexity needs -> escalate on failure signals (notebook 04)."""

    def __init__(self, router: IntentRouter, tiers: dict[str, Any], shop: Any, target: EscalationTarget,
                 policy: EscalationPolicy | None = None, select: Callable[[str, str], str] = select_tier,
                 measure_confidence: bool = True, max_tokens: int = 96) -> None:
        missing = [t for t in TIER_NAMES if t not in tiers]
        if missing:
            raise ValueError(f"tiers needs a runtime for {missing} (see tier_runtimes()).")
        self.router, self.tiers, self.shop, self.target = router, tiers, shop, target
        self.policy = policy or EscalationPolicy()
        self.select, self.measure_confidence, self.max_tokens = select, measure_confidence, max_tokens

    def _run(self, specialist: Specialist, runtime: Any, text: str):
        return specialist.agent(runtime, self.shop, max_tokens=self.max_tokens).run(text)

    def handle(self, text: str) -> Handled:
        """Run one request through the whole pipeline."""
        import time

        from helpers.domain.tools import openai_tools

        t0 = time.perf_counter()
        route = self.router.route(text)
        calls = []
        if route.answered_by:
            calls.append(Call("router", route.answered_by, False, route.prompt_tokens, route.completion_tokens,
                              route.seconds))
        spec = SPECIALISTS[route.specialist]
        tier = self.select(text, route.intent)
        rt = self.tiers[tier]
        conf = None
        if self.measure_confidence:
            msgs = ([{"role": "system", "content": spec.system}] if spec.system else []) + [
                {"role": "user", "content": text}]
            d = decision_confidence(rt, msgs, openai_tools() if spec.tools else None)
            conf = d["confidence"] if d else None
        first = self._run(spec, rt, text)
        calls.append(Call("first", first.answered_by, False, first.prompt_tokens, first.completion_tokens,
                          first.seconds))
        signals = failure_signals(first, route, conf, self.policy.min_confidence)
        final, escalated = first, False
        if self.policy.should_escalate(signals):
            escalated = True
            final = self._run(spec, self.target.runtime, text)
            calls.append(Call("escalated", final.answered_by, self.target.remote, final.prompt_tokens,
                              final.completion_tokens, final.seconds))
        return Handled(text, route, tier, signals, escalated, final.answer, final.ok, final.answered_by,
                       final.tool_calls, calls, time.perf_counter() - t0)


# ----------------------------------------------------------------------------------------------- cost
@dataclass
class Prices:
    """An editable price table (notebook 04): USD per 1M tokens for the remote model; the local model costs
    only electricity, from the seconds it ran, the machine's extra power draw and the price of a kWh."""

    remote_input_per_m: float = 0.15  # USD per 1M input tokens (edit: your provider's list price)
    remote_output_per_m: float = 0.60  # USD per 1M output tokens
    local_watts: float = 15.0  # extra power while the model runs (W); measure yours with a wall meter
    usd_per_kwh: float = 0.30


def remote_cost(prompt_tokens: int, completion_tokens: int, prices: Prices) -> float:
    """USD for tokens at the remote price."""
    return (prompt_tokens * prices.remote_input_per_m + completion_tokens * prices.remote_output_per_m) / 1e6


def local_cost(seconds: float, prices: Prices) -> float:
    """USD of electricity for `seconds` of local inference."""
    return seconds * prices.local_watts / 3.6e6 * prices.usd_per_kwh


def call_cost(call: Call, prices: Prices) -> float:
    """The cost of one call: token price if remote, electricity if local."""
    if call.remote:
        return remote_cost(call.prompt_tokens, call.completion_tokens, prices)
    return local_cost(call.seconds, prices)


def _pct(values: list[float], q: float) -> float:
    v = sorted(values)
    k = (len(v) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def summarize(handled: list[Handled], prices: Prices, items: list[WorkItem] | None = None) -> dict[str, Any]:
    """Share handled locally, latency (median, p95), cost, and the ratio to sending everything to the remote
    price; router accuracy when the labelled `items` are given (notebook 04)."""
    if not handled:
        raise ValueError("No handled requests to summarize: run the workload first.")
    n = len(handled)
    lat = [h.seconds for h in handled]
    cost = sum(call_cost(c, prices) for h in handled for c in h.calls)
    # everything to the remote model: the requests' measured tokens at the remote price (one model, no router)
    all_remote = sum(remote_cost(c.prompt_tokens, c.completion_tokens, prices)
                     for h in handled for c in h.calls if c.stage != "escalated" and c.stage != "router")
    # the design as intended: escalations priced at the remote price even when they ran locally here
    as_designed = sum(remote_cost(c.prompt_tokens, c.completion_tokens, prices) if c.stage == "escalated"
                      else local_cost(c.seconds, prices) for h in handled for c in h.calls)
    out: dict[str, Any] = {
        "n": n,
        "local_share": sum(h.handled_locally for h in handled) / n,
        "first_try_share": sum(not h.escalated for h in handled) / n,
        "escalated_share": sum(h.escalated for h in handled) / n,
        "ok_share": sum(h.ok for h in handled) / n,
        "median_s": statistics.median(lat),
        "p95_s": _pct(lat, 0.95),
        "cost_usd": cost,
        "cost_as_designed_usd": as_designed,
        "all_remote_usd": all_remote,
        "ratio": all_remote / cost if cost > 0 else float("inf"),
        "ratio_as_designed": all_remote / as_designed if as_designed > 0 else float("inf"),
        "tokens": sum(c.prompt_tokens + c.completion_tokens for h in handled for c in h.calls),
    }
    if items is not None:
        if len(items) != n:
            raise ValueError(f"{len(items)} labelled items for {n} handled requests: pass the same workload.")
        out["router_accuracy"] = sum(h.route.intent == it.intent for h, it in zip(handled, items)) / n
        out["tool_correct"] = sum((it.intent == NO_TOOL and not h.tool_calls) or
                                  any(c["name"] == it.intent for c in h.tool_calls)
                                  for h, it in zip(handled, items)) / n
    return out


__all__ = ["NO_TOOL", "KEYWORD_RULES", "keyword_intent", "Specialist", "SPECIALISTS", "INTENT_TO_SPECIALIST",
           "Permissions", "check_mapping", "decision_confidence", "RouteDecision", "IntentRouter", "TIER_NAMES",
           "TIERS", "COMPLEXITY", "select_tier", "tier_files", "tier_runtimes", "failure_signals",
           "EscalationPolicy", "EscalationTarget", "escalation_target", "WorkItem", "make_workload", "Call",
           "Handled", "HybridRouter", "Prices", "remote_cost", "local_cost", "call_cost", "summarize"]
